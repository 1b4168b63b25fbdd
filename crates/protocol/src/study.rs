//! The study registry's enums, with names.

solidity_enum! {
    /// Where a study is in its life (`IStudyRegistry.Status`; a study that does not exist has
    /// no status).
    StudyStatus {
        /// Registered by its researcher, waiting for governance's approval.
        Registered = 1 => "registered",
        /// Approved by governance: patients may opt in, holders answer queries.
        Approved = 2 => "approved",
        /// Closed for good: no new query.
        Closed = 3 => "closed",
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
            assert_eq!(s.to_solidity(), n);
            assert_eq!(s.to_string(), name);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{name}\""));
            assert_eq!(
                serde_json::from_str::<StudyStatus>(&format!("\"{name}\"")).unwrap(),
                s
            );
        }
        assert_eq!(StudyStatus::from_solidity(0), None);
        assert_eq!(StudyStatus::from_solidity(9), None);
    }
}
