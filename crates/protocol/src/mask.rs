//! Category masks (64-bit) in JSON.
//!
//! JavaScript reads every JSON number as an IEEE double, which is exact only up to 2^53 - 1:
//! a mask with any of bits 53-63 set would silently lose bits in a viem or ethers client.
//! Masks up to [`MAX_SAFE_INTEGER`] are written as numbers, as they always were; larger ones as
//! decimal strings. Both forms are accepted on input, whatever the value.
//!
//! Use it on a field with `#[serde(with = "medrec_protocol::mask")]`, or [`Mask`] as a type.

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// The largest integer a JSON number carries exactly in JavaScript (`Number.MAX_SAFE_INTEGER`).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Writes `mask` as a JSON number when JavaScript reads it exactly, else as a decimal string.
pub fn serialize<S: Serializer>(mask: &u64, s: S) -> Result<S::Ok, S::Error> {
    if *mask <= MAX_SAFE_INTEGER {
        s.serialize_u64(*mask)
    } else {
        s.collect_str(mask)
    }
}

/// Reads a mask written as a JSON number or as a decimal string.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(u64),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Number(n) => Ok(n),
        Either::Text(t) => t.trim().parse().map_err(|_| {
            de::Error::custom(format!(
                "a category mask must be a whole number from 0 to 2^64 - 1, not {t:?}"
            ))
        }),
    }
}

/// The JSON value of a mask, for code that builds JSON by hand.
pub fn to_json(mask: u64) -> serde_json::Value {
    if mask <= MAX_SAFE_INTEGER {
        mask.into()
    } else {
        mask.to_string().into()
    }
}

/// A category mask that serializes as this module says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Mask(pub u64);

impl Serialize for Mask {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Mask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize(d).map(Mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_masks_stay_numbers_and_large_ones_become_strings() {
        assert_eq!(serde_json::to_string(&Mask(0b1011)).unwrap(), "11");
        assert_eq!(
            serde_json::to_string(&Mask(MAX_SAFE_INTEGER)).unwrap(),
            "9007199254740991"
        );
        assert_eq!(
            serde_json::to_string(&Mask(1 << 53)).unwrap(),
            "\"9007199254740992\""
        );
        assert_eq!(
            serde_json::to_string(&Mask(u64::MAX)).unwrap(),
            "\"18446744073709551615\""
        );
        assert_eq!(to_json(1 << 63), serde_json::json!("9223372036854775808"));
    }

    #[test]
    fn both_forms_are_read_and_bad_ones_refused() {
        for (text, want) in [
            ("11", 11),
            ("\"11\"", 11),
            ("\"18446744073709551615\"", u64::MAX),
        ] {
            assert_eq!(
                serde_json::from_str::<Mask>(text).unwrap(),
                Mask(want),
                "{text}"
            );
        }
        for bad in ["-1", "\"0x10\"", "\"18446744073709551616\"", "1.5", "null"] {
            assert!(serde_json::from_str::<Mask>(bad).is_err(), "{bad}");
        }
    }
}
