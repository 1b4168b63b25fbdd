//! The participant registry's roles, with names: what a person or a JSON document sees
//! instead of the Solidity enum's number.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A credential's role (`IParticipantRegistry.Role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Role {
    /// No credential.
    None = 0,
    /// A provider: holds records, reads what patients grant.
    Provider = 1,
    /// A researcher: registers and queries studies.
    Researcher = 2,
}

impl From<u8> for Role {
    /// The role the contract returns as a number (unknown numbers read as `None`).
    fn from(n: u8) -> Self {
        match n {
            1 => Self::Provider,
            2 => Self::Researcher,
            _ => Self::None,
        }
    }
}

impl From<Role> for u8 {
    fn from(r: Role) -> u8 {
        r as u8
    }
}

impl Role {
    /// The role's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Provider => "provider",
            Self::Researcher => "researcher",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_have_the_contracts_numbers_and_names() {
        for (n, r, name) in [
            (0u8, Role::None, "none"),
            (1, Role::Provider, "provider"),
            (2, Role::Researcher, "researcher"),
        ] {
            assert_eq!(Role::from(n), r);
            assert_eq!(u8::from(r), n);
            assert_eq!(r.to_string(), name);
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{name}\""));
        }
    }
}
