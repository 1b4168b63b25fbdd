// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// @title IParticipantRegistry
/// @notice Credentials of the consortium's providers and researchers. Patients need none.
/// @dev One role per account. A credential is live while it is not revoked and `block.timestamp`
/// is before its expiry. Every change emits an event carrying the whole new state.
/// A credential's `validSince` is when its current unbroken run began: a renewal of a live
/// credential of the same role keeps it; a credential issued after a revocation, a lapse or as
/// another role starts a new run, from the next second (timestamps are whole seconds: a grant of
/// the same second may predate the revocation). Consent given to an account before its run began
/// does not count (see {IConsentRegistry}), so re-credentialing never revives old grants.
interface IParticipantRegistry {
    /// @notice What a credential allows its holder to be.
    enum Role {
        None,
        Provider,
        Researcher
    }

    /// @notice A credential as stored.
    /// @param role the role it confers (`None` when the account has no credential)
    /// @param issuedAt when governance issued it (seconds)
    /// @param expiresAt when it stops being live (seconds, exclusive)
    /// @param revoked whether governance revoked it before its expiry
    /// @param validSince when the current unbroken run of live credentials of this role began
    /// @param ref hash of the off-chain credential document (licence, registration)
    struct Credential {
        Role role;
        uint40 issuedAt;
        uint40 expiresAt;
        bool revoked;
        uint40 validSince;
        bytes32 ref;
    }

    /// @notice Emitted when governance credentials (or re-credentials) `account`.
    event CredentialIssued(
        address indexed account, Role indexed role, bytes32 ref, uint40 issuedAt, uint40 expiresAt
    );

    /// @notice Emitted when governance revokes the credential of `account`.
    event CredentialRevoked(address indexed account, Role indexed role, uint40 revokedAt);

    /// @notice The account is the zero address.
    error ParticipantZeroAddress();
    /// @notice `role` is not Provider or Researcher.
    error ParticipantInvalidRole();
    /// @notice The expiry is not in the future.
    error ParticipantExpiryInPast(uint40 expiresAt, uint40 nowTs);
    /// @notice The credential reference hash is zero.
    error ParticipantEmptyReference();
    /// @notice `account` has no live credential to revoke.
    error ParticipantNotCredentialed(address account);

    /// @notice Credentials `account` as `role` until `expiresAt`, replacing any earlier credential.
    /// Keeps `validSince` when the earlier credential is live and of the same role; sets it to
    /// now for a first credential, and to the next second after a revocation, a lapse or a role
    /// change (so that no grant of the same second, given before it, comes back).
    /// Requirements: caller holds the governance role; `account` non-zero; `role` is Provider or
    /// Researcher; `ref` non-zero; `expiresAt` in the future.
    /// Emits {CredentialIssued}.
    function issueCredential(address account, Role role, bytes32 ref, uint40 expiresAt) external;

    /// @notice Revokes the live credential of `account`; it stops counting in the same block.
    /// Requirements: caller holds the governance role; `account` has a live credential.
    /// Emits {CredentialRevoked}.
    function revokeCredential(address account) external;

    /// @notice Whether `account` holds a live credential for `role` now.
    function isCredentialed(address account, Role role) external view returns (bool);

    /// @notice When the current run of `account`'s credential began (0: never credentialed);
    /// consent given to `account` before it does not count.
    function validSinceOf(address account) external view returns (uint40);

    /// @notice The stored credential of `account`, live or not.
    function credentialOf(address account) external view returns (Credential memory);
}
