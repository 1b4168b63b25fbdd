//! Records at their holder's gatekeeper: the upload (`POST /v1/records`), the read
//! (`POST /v1/records/{id}/read`), and the two formulas every program computes: a pointer's
//! hiding commitment and its record id.
//!
//! Nothing on chain says what a record is (issue 16): a pointer carries
//! [`commitment`]`(patient, holder, category, content hash, salt)`, with a 32-byte random salt
//! the holder's gatekeeper chose for the record and keeps with it. The gatekeeper serves the
//! [`Opening`] (category and salt) with the bytes, in the [`OPENING_HEADER`]; the reader checks
//! the bytes' SHA-256 and the opening against the commitment on chain ([`Opening::opens`]).

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::sol_types::SolValue;
use serde::{Deserialize, Serialize};

/// Where a holder uploads records.
pub const UPLOAD_PATH: &str = "/v1/records";

/// The read route, as the gatekeeper's router writes it: [`read_url`] gives this path under
/// the gatekeeper's base URL.
pub const READ_ROUTE: &str = "/v1/records/{record_id}/read";

/// The content type of a record, as uploaded and as served.
pub const FHIR_JSON: &str = "application/fhir+json";

/// The locator a holder anchors for a record its gatekeeper at `base` keeps: the holder's own
/// reference, for people. No client dereferences a locator (anyone who anchors writes what
/// they like there); a record is read at [`read_url`] under the endpoint its holder
/// registered on chain (`RecordRegistry.gatekeeperOf`).
pub fn locator(base: &str, record_id: B256) -> String {
    format!("{}/v1/records/{record_id}", base.trim_end_matches('/'))
}

/// Where a record is read: under the endpoint its holder registered on chain.
pub fn read_url(endpoint: &str, record_id: B256) -> String {
    format!(
        "{}{}",
        endpoint.trim_end_matches('/'),
        READ_ROUTE.replace("{record_id}", &record_id.to_string())
    )
}

/// The header of a read's answer that carries the record's [`Opening`], as JSON.
pub const OPENING_HEADER: &str = "x-medrec-opening";

/// A pointer's commitment, as the record registry stores it:
/// `keccak256(abi.encode(patient, holder, uint8 category, contentHash, salt))`.
pub fn commitment(
    patient: Address,
    holder: Address,
    category: u8,
    content_hash: B256,
    salt: B256,
) -> B256 {
    // A uint8 encodes as its word, as a uint256 of the same value does.
    let category = U256::from(category);
    keccak256((patient, holder, category, content_hash, salt).abi_encode_params())
}

/// A record's id, bound to its holder, its patient and its commitment (the registry refuses any
/// other): `keccak256(abi.encode(holder, patient, commitment))`.
pub fn record_id(holder: Address, patient: Address, commitment: B256) -> B256 {
    keccak256((holder, patient, commitment).abi_encode())
}

/// What opens a pointer's commitment besides its parties and the bytes: the record's category
/// and its salt. Given, with the bytes, to whoever may read them (never on chain).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opening {
    /// The record's category, 0..63.
    pub category: u8,
    /// The salt the holder chose for the record.
    pub salt: B256,
}

impl Opening {
    /// A fresh opening for a record of `category`: a random salt from the operating system's
    /// secure generator.
    pub fn new(category: u8) -> Self {
        Self {
            category,
            salt: crate::commitment::new_salt(),
        }
    }

    /// The commitment of a record of `patient` at `holder` whose bytes hash to `content_hash`.
    pub fn commit(&self, patient: Address, holder: Address, content_hash: B256) -> B256 {
        commitment(patient, holder, self.category, content_hash, self.salt)
    }

    /// Whether this opening and `content_hash` open `committed`, the commitment anchored for
    /// a record of `patient` at `holder`.
    pub fn opens(
        &self,
        committed: B256,
        patient: Address,
        holder: Address,
        content_hash: B256,
    ) -> bool {
        committed != B256::ZERO && self.commit(patient, holder, content_hash) == committed
    }

    /// The opening as the [`OPENING_HEADER`] carries it.
    pub fn to_header(&self) -> String {
        serde_json::to_string(self).expect("an opening serializes")
    }

    /// The opening in an [`OPENING_HEADER`] value; `None` if malformed or out of range.
    pub fn from_header(value: &str) -> Option<Self> {
        serde_json::from_str::<Self>(value)
            .ok()
            .filter(|o| o.category < 64)
    }
}

/// Whether `bytes` are a FHIR R4 JSON resource, as far as both ends check: a JSON object
/// with a string `resourceType`.
pub fn is_fhir(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .is_some_and(|v| v.get("resourceType").is_some_and(|t| t.is_string()))
}

/// The answer to an upload: 201 when stored now, 200 when it was stored before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Uploaded {
    /// The id the record is kept under ([`record_id`]).
    pub record_id: B256,
    /// Its SHA-256.
    pub content_hash: B256,
    /// The commitment to anchor for it ([`commitment`]).
    pub commitment: B256,
    /// Its opening: the category it was stored under first and the salt the gatekeeper chose.
    pub opening: Opening,
    /// Its size in bytes.
    pub size: u64,
    /// Whether this upload stored it (false: it was there already).
    pub stored: bool,
}

/// The listing route: which records the gatekeeper holds for a patient, for a requester that
/// may read them now ([`RecordListRequest`], answered with a [`RecordList`]).
pub const LIST_PATH: &str = "/v1/records/list";

alloy::sol! {
    /// A signed request for the records a holder keeps of `patient` that `requester` may read
    /// now, under the gatekeeper's EIP-712 domain (as a [`crate::RecordRequest`] is).
    #[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
    struct RecordListRequest {
        address requester;
        address patient;
        address audience;
        uint256 nonce;
        uint64 issuedAt;
        uint64 expiresAt;
    }
}

signed_request!(RecordListRequest, requester);

/// One record in a [`RecordList`]: its id, the SHA-256 of its bytes and its opening, so that
/// the requester checks the category against the pointer's commitment on chain
/// ([`Opening::opens`]) without reading the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedRecord {
    /// The record id.
    pub record_id: B256,
    /// The SHA-256 of its bytes.
    pub content_hash: B256,
    /// Its category and salt.
    pub opening: Opening,
}

/// The answer to a [`RecordListRequest`]: the records of `patient` kept here that the
/// requester may read now (the patient: all; a live guardian: those within their scope; a
/// grantee, or a provider under break-glass: those of the categories it may read), in the
/// order they were stored. Anyone else gets the same shape with no records: an empty list does
/// not tell whether the holder keeps anything of the patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordList {
    /// The holder.
    pub holder: Address,
    /// The patient.
    pub patient: Address,
    /// The records.
    pub records: Vec<ListedRecord>,
}

/// The erasure route, as the gatekeeper's router writes it: the holder's [`EraseRequest`]
/// destroys the record's data key and ciphertext ([`erase_url`]).
pub const ERASE_ROUTE: &str = "/v1/records/{record_id}/erase";

/// Where the holder erases a record at its gatekeeper at `base`.
pub fn erase_url(base: &str, record_id: B256) -> String {
    format!(
        "{}{}",
        base.trim_end_matches('/'),
        ERASE_ROUTE.replace("{record_id}", &record_id.to_string())
    )
}

alloy::sol! {
    /// The holder's signed order to erase `recordId` at its gatekeeper (`audience`, the holder
    /// itself), under the gatekeeper's EIP-712 domain.
    #[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
    struct EraseRequest {
        address holder;
        bytes32 recordId;
        address audience;
        uint256 nonce;
        uint64 issuedAt;
        uint64 expiresAt;
    }
}

signed_request!(EraseRequest, holder);

/// The answer to an erasure: the record is erased at the gatekeeper (by this request, or
/// before: erasing again changes nothing, so a retry finishes the job).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Erased {
    /// The record.
    pub record_id: B256,
    /// Its patient (the holder's chain step, `RecordRegistry.erase`, names them).
    pub patient: Address,
    /// Whether this request erased it (false: it was erased before).
    pub erased_now: bool,
}

/// What the access-log entry of an erasure says (its requester is the holder).
pub const ERASURE_REASON: &str = "erased";

/// What an access-log entry says of a read refused because its record was erased.
pub const ERASED_READ_REASON: &str = "record erased";

/// The address a gatekeeper listens on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8701";
/// The gatekeeper URL a client uses unless told otherwise: a gatekeeper on its defaults.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8701";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commitment_is_keccak_of_the_abi_encoded_opening() {
        // A fixed value, from `cast keccak $(cast abi-encode
        // "f(address,address,uint8,bytes32,bytes32)" 0x11..11 0x22..22 7 0x33..33 0x44..44)`:
        // the registry's NatSpec formula; a change of either shows here.
        let c = commitment(
            Address::repeat_byte(0x11),
            Address::repeat_byte(0x22),
            7,
            B256::repeat_byte(0x33),
            B256::repeat_byte(0x44),
        );
        assert_eq!(
            c,
            "0x969d3ff61c4ae2eec4085deb457143ca1e3f3af1d548e41de224029018baef40"
                .parse::<B256>()
                .unwrap()
        );
        let o = Opening {
            category: 7,
            salt: B256::repeat_byte(0x44),
        };
        let (p, h, hash) = (
            Address::repeat_byte(0x11),
            Address::repeat_byte(0x22),
            B256::repeat_byte(0x33),
        );
        assert!(o.opens(c, p, h, hash));
        assert!(!o.opens(c, h, p, hash), "parties swapped");
        assert!(!o.opens(c, p, h, B256::repeat_byte(0x34)), "other bytes");
        assert!(
            !Opening { category: 8, ..o }.opens(c, p, h, hash),
            "other category"
        );
        assert!(
            !Opening {
                salt: B256::ZERO,
                ..o
            }
            .opens(c, p, h, hash),
            "no salt"
        );
        assert_eq!(Opening::from_header(&o.to_header()), Some(o));
        assert_eq!(
            Opening::from_header(r#"{"category":64,"salt":"0x00"}"#),
            None
        );
        assert_ne!(Opening::new(3).salt, Opening::new(3).salt, "fresh salts");
    }

    #[test]
    fn the_record_id_is_keccak_of_holder_patient_and_commitment() {
        let (holder, patient) = (Address::repeat_byte(0xaa), Address::repeat_byte(0xbb));
        let hash = B256::repeat_byte(0xcc);
        let mut encoded = Vec::new();
        encoded.extend_from_slice(&[0u8; 12]);
        encoded.extend_from_slice(holder.as_slice());
        encoded.extend_from_slice(&[0u8; 12]);
        encoded.extend_from_slice(patient.as_slice());
        encoded.extend_from_slice(hash.as_slice());
        assert_eq!(record_id(holder, patient, hash), keccak256(&encoded));
        // A fixed value, from `cast keccak $(cast abi-encode "f(address,address,bytes32)"
        // 0x11..11 0x22..22 0x33..33)`: a change of the formula shows here.
        assert_eq!(
            record_id(
                Address::repeat_byte(0x11),
                Address::repeat_byte(0x22),
                B256::repeat_byte(0x33)
            ),
            "0x93a444846e4fda069407f6c3b1f13662af7192b9829015f800dc507b04dfeab1"
                .parse::<B256>()
                .unwrap()
        );
    }

    #[test]
    fn locators_and_read_urls() {
        let id = B256::repeat_byte(1);
        assert_eq!(DEFAULT_URL, format!("http://{DEFAULT_LISTEN}"));
        assert_eq!(
            read_url("http://h/", id),
            format!(
                "http://h{}",
                READ_ROUTE.replace("{record_id}", &id.to_string())
            )
        );
        let l = locator("http://127.0.0.1:8701/", id);
        assert_eq!(l, format!("http://127.0.0.1:8701/v1/records/{id}"));
        assert_eq!(read_url("http://127.0.0.1:8701", id), format!("{l}/read"));
    }

    #[test]
    fn fhir_is_a_json_object_with_a_resource_type() {
        assert!(is_fhir(br#"{"resourceType":"Patient"}"#));
        assert!(!is_fhir(br#"{"resourceType":1}"#));
        assert!(!is_fhir(br#"{"id":"x"}"#));
        assert!(!is_fhir(b"not json"));
    }
}
