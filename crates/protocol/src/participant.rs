//! The participant registry's enums, with names.

solidity_enum! {
    /// A credential's role (`IParticipantRegistry.Role`; no credential has no role).
    Role {
        /// A provider: holds records, reads what patients grant.
        Provider = 1 => "provider",
        /// A researcher: registers and queries studies.
        Researcher = 2 => "researcher",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_have_the_contracts_numbers_and_names() {
        for (n, r, name) in [
            (1u8, Role::Provider, "provider"),
            (2, Role::Researcher, "researcher"),
        ] {
            assert_eq!(Role::from_solidity(n), Some(r));
            assert_eq!(r.to_solidity(), n);
            assert_eq!(r.to_string(), name);
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{name}\""));
        }
        assert_eq!(Role::from_solidity(0), None);
    }
}
