//! Salted commitments: what goes on chain for a short text that only some parties may read (a
//! break-glass reason, a credential's reference). The chain holds
//! `keccak256(abi.encode(bytes32 salt, string text))` with a fresh random salt; whoever must
//! open it (the patient and governance for a reason, the credentialed party for a reference)
//! is given the text and the salt off chain and checks them with [`verify`]. Without the salt,
//! hashing a dictionary of likely texts finds nothing, and the same text commits differently
//! each time, so equal reasons cannot be linked either.

use alloy::primitives::{B256, keccak256};
use alloy::sol_types::SolValue;
use rand::RngCore;

/// `keccak256(abi.encode(salt, text))`, as Solidity computes it (the contracts' NatSpec names
/// this formula).
pub fn commitment(salt: B256, text: &str) -> B256 {
    keccak256((salt, text.to_owned()).abi_encode_params())
}

/// A fresh 32-byte salt from the operating system's secure generator (through `rand`'s
/// `ThreadRng`, a CSPRNG seeded from it).
pub fn new_salt() -> B256 {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    B256::from(b)
}

/// A salt and the commitment of `text` under it.
pub fn commit(text: &str) -> (B256, B256) {
    let salt = new_salt();
    (salt, commitment(salt, text))
}

/// Whether `text` under `salt` opens `committed`.
pub fn verify(committed: B256, salt: B256, text: &str) -> bool {
    commitment(salt, text) == committed
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::b256;

    #[test]
    fn matches_solidity_abi_encode() {
        // test/BreakGlass.t.sol `test_commitment_knownAnswer` asserts the same value on chain
        // (and `cast keccak $(cast abi-encode "f(bytes32,string)" 0x..01 unconscious)` agrees).
        let salt = B256::with_last_byte(1);
        assert_eq!(
            commitment(salt, "unconscious"),
            b256!("88faab7e16911d42e24ab0c14a8ecbd582c83292a43c5cf20b7a27ead6c72a07")
        );
    }

    #[test]
    fn same_text_commits_differently_and_verifies_with_its_salt() {
        let text = "unconscious in the emergency department";
        let (s1, c1) = commit(text);
        let (s2, c2) = commit(text);
        assert_ne!(s1, s2);
        assert_ne!(c1, c2);
        assert_ne!(c1, keccak256(text.as_bytes()));
        assert!(verify(c1, s1, text));
        assert!(verify(c2, s2, text));
        assert!(!verify(c1, s2, text));
        assert!(!verify(c1, s1, "unconscious in ED"));
    }
}
