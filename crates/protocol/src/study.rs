//! The study registry's enums, with names: what a person or a JSON document sees instead of
//! the Solidity enum's number.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A study's status (`IStudyRegistry.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StudyStatus {
    /// No such study.
    None,
    /// Registered by its researcher, waiting for governance's approval.
    Registered,
    /// Approved: holders answer its queries.
    Approved,
    /// Closed by governance: no new query.
    Closed,
}

impl From<u8> for StudyStatus {
    /// The status the contract returns as a number (unknown numbers read as `None`).
    fn from(n: u8) -> Self {
        match n {
            1 => Self::Registered,
            2 => Self::Approved,
            3 => Self::Closed,
            _ => Self::None,
        }
    }
}

impl StudyStatus {
    /// The status's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Registered => "registered",
            Self::Approved => "approved",
            Self::Closed => "closed",
        }
    }
}

impl fmt::Display for StudyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_have_the_contracts_numbers_and_names() {
        for (n, s, name) in [
            (0u8, StudyStatus::None, "none"),
            (1, StudyStatus::Registered, "registered"),
            (2, StudyStatus::Approved, "approved"),
            (3, StudyStatus::Closed, "closed"),
        ] {
            assert_eq!(StudyStatus::from(n), s);
            assert_eq!(s.to_string(), name);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{name}\""));
        }
        assert_eq!(StudyStatus::from(9), StudyStatus::None);
    }
}
