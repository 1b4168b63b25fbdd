//! Records at their holder's gatekeeper: the upload (`POST /v1/records`), the read
//! (`POST /v1/records/{id}/read`) and the record-id formula both ends compute.

use alloy::primitives::{Address, B256, keccak256};
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

/// The record id the gatekeeper gives a record, and `medrec anchor`'s default:
/// keccak256(abi.encode(holder, patient, content hash)).
pub fn record_id(holder: Address, patient: Address, content_hash: B256) -> B256 {
    keccak256((holder, patient, content_hash).abi_encode())
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
    /// Its size in bytes.
    pub size: u64,
    /// Whether this upload stored it (false: it was there already).
    pub stored: bool,
}

/// The address a gatekeeper listens on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8701";
/// The gatekeeper URL a client uses unless told otherwise: a gatekeeper on its defaults.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8701";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_id_is_keccak_of_holder_patient_and_hash() {
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
