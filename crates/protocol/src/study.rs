//! The study registry's enums, with names: what a person or a JSON document sees instead of
//! the Solidity enum's number.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a study is in its life (`IStudyRegistry.Status`, without `None`: a study that does
/// not exist has no status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StudyStatus {
    /// Registered by its researcher, waiting for governance's approval.
    Registered,
    /// Approved by governance: patients may opt in, holders answer queries.
    Approved,
    /// Closed for good: no new query.
    Closed,
}

impl StudyStatus {
    /// The status of the Solidity enum's value (`None`, 0, and unknown values: `None`).
    pub fn from_solidity(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Registered),
            2 => Some(Self::Approved),
            3 => Some(Self::Closed),
            _ => None,
        }
    }

    /// The name, as in JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Approved => "approved",
            Self::Closed => "closed",
        }
    }
}

impl fmt::Display for StudyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_have_the_contracts_numbers_and_names() {
        for (n, s, name) in [
            (1u8, StudyStatus::Registered, "registered"),
            (2, StudyStatus::Approved, "approved"),
            (3, StudyStatus::Closed, "closed"),
        ] {
            assert_eq!(StudyStatus::from_solidity(n), Some(s));
            assert_eq!(s.to_string(), name);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{name}\""));
        }
        assert_eq!(StudyStatus::from_solidity(0), None);
        assert_eq!(StudyStatus::from_solidity(9), None);
    }
}
