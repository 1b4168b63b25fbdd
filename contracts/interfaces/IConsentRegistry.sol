// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// @title IConsentRegistry
/// @notice Who may see which categories of a patient's records, for what purpose, until when.
/// @dev A grant is keyed by (patient, grantee); a new grant replaces the previous one whole.
/// Categories are a 64-bit mask (bit `c` is category `c`). Times are unix seconds; a window
/// [notBefore, expiresAt) is live when `notBefore <= block.timestamp < expiresAt`. Only the
/// patient, or a guardian the patient named and who acts within the guardian's own scope and
/// period, changes a patient's grants, directly or by an EIP-712 signature anyone may relay.
/// Every state change emits an event carrying the whole new state, so an indexer can rebuild
/// all state from events alone.
interface IConsentRegistry {
    /// @notice A grant as stored (one slot).
    struct Grant {
        uint64 categories;
        uint8 purpose;
        uint40 notBefore;
        uint40 expiresAt;
    }

    /// @notice A guardian's mandate as stored (one slot).
    struct Guardian {
        uint64 scope;
        uint40 notBefore;
        uint40 expiresAt;
    }

    /// @notice Break-glass access as stored (one slot).
    struct EmergencyAccess {
        uint40 openedAt;
        uint40 expiresAt;
    }

    /// @notice Emitted when `by` (the patient or one of their guardians) grants `grantee` access.
    event Granted(
        address indexed patient,
        address indexed grantee,
        address indexed by,
        uint64 categories,
        uint8 purpose,
        uint40 notBefore,
        uint40 expiresAt
    );

    /// @notice Emitted when `by` revokes the grant of `grantee`; no access remains from this block.
    event Revoked(address indexed patient, address indexed grantee, address indexed by);

    /// @notice Emitted when `patient` names (or re-names) `guardian`.
    event GuardianSet(
        address indexed patient,
        address indexed guardian,
        uint64 scope,
        uint40 notBefore,
        uint40 expiresAt
    );

    /// @notice Emitted when `patient` removes `guardian`.
    event GuardianRemoved(address indexed patient, address indexed guardian);

    /// @notice Emitted when `provider` opens break-glass access to all of `patient`'s categories.
    event EmergencyAccessOpened(
        address indexed patient,
        address indexed provider,
        bytes32 reasonHash,
        uint40 openedAt,
        uint40 expiresAt
    );

    /// @notice Emitted when break-glass access is closed before its expiry by `by`.
    event EmergencyAccessClosed(address indexed patient, address indexed provider, address by);

    /// @notice Emitted when governance sets the longest break-glass window.
    event EmergencyCapSet(uint40 cap);

    /// @notice An address argument is zero.
    error ConsentZeroAddress();
    /// @notice The category mask is empty.
    error ConsentNoCategories();
    /// @notice The purpose code is zero.
    error ConsentNoPurpose();
    /// @notice The window is empty or already over.
    error ConsentInvalidWindow(uint40 notBefore, uint40 expiresAt);
    /// @notice A patient cannot grant to, or be the guardian of, themselves.
    error ConsentSelf();
    /// @notice `caller` is neither the patient nor a guardian of theirs live now.
    error ConsentUnauthorized(address patient, address caller);
    /// @notice The guardian acts outside their scope or beyond their own expiry.
    error ConsentGuardianOutOfScope(address patient, address guardian);
    /// @notice There is no grant of `patient` to `grantee`.
    error ConsentGrantNotFound(address patient, address grantee);
    /// @notice `patient` has not named `guardian`.
    error ConsentGuardianNotFound(address patient, address guardian);
    /// @notice The signature is past its deadline.
    error ConsentSignatureExpired(uint256 deadline);
    /// @notice The signature is not `signer`'s for this chain, contract, nonce and content.
    error ConsentInvalidSignature(address signer);
    /// @notice The caller is not a credentialed provider.
    error ConsentNotProvider(address account);
    /// @notice The requested break-glass duration is zero or above the cap.
    error ConsentEmergencyDuration(uint40 duration, uint40 cap);
    /// @notice Break-glass access of `provider` to `patient` is already open.
    error ConsentEmergencyActive(address patient, address provider);
    /// @notice There is no open break-glass access of `provider` to `patient`.
    error ConsentEmergencyNotFound(address patient, address provider);
    /// @notice The reason hash is zero.
    error ConsentNoReason();
    /// @notice The cap is zero or above the hard maximum.
    error ConsentInvalidCap(uint40 cap, uint40 max);

    /// @notice Grants `grantee` access to `categories` of `patient` for `purpose` within
    /// [notBefore, expiresAt), replacing any earlier grant to `grantee`. `notBefore` 0 means now.
    /// Requirements: caller is `patient`, or a guardian of `patient` live now whose scope
    /// covers `categories` and the categories of the grant it replaces, and whose mandate lasts
    /// at least until `expiresAt`; `grantee` non-zero
    /// and not `patient`; `categories`, `purpose` non-zero; `notBefore < expiresAt`;
    /// `expiresAt` in the future.
    /// Emits {Granted}.
    function grant(
        address patient,
        address grantee,
        uint64 categories,
        uint8 purpose,
        uint40 notBefore,
        uint40 expiresAt
    ) external;

    /// @notice Revokes the grant of `patient` to `grantee`; it stops counting in this block.
    /// Requirements: a grant exists; caller is `patient`, or a guardian live now whose scope
    /// covers the grant's categories.
    /// Emits {Revoked}.
    function revoke(address patient, address grantee) external;

    /// @notice {grant} authorised by `signer`'s EIP-712 signature (EOA or ERC-1271 wallet),
    /// relayed by anyone. Bound to this chain, this contract, `signer`'s next nonce and
    /// `deadline`.
    /// Requirements: as {grant} with `signer` as the caller; `block.timestamp <= deadline`;
    /// `nonce` is `signer`'s current nonce; the signature is valid.
    /// Emits {Granted}.
    function grantBySig(
        address patient,
        address grantee,
        uint64 categories,
        uint8 purpose,
        uint40 notBefore,
        uint40 expiresAt,
        address signer,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice {revoke} authorised by `signer`'s EIP-712 signature, relayed by anyone.
    /// Requirements: as {revoke} with `signer` as the caller, and as {grantBySig}.
    /// Emits {Revoked}.
    function revokeBySig(
        address patient,
        address grantee,
        address signer,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Names `guardian` to act for the caller over `scope` within [notBefore, expiresAt).
    /// Requirements: `guardian` non-zero and not the caller; `scope` non-zero; a valid window.
    /// Emits {GuardianSet}.
    function setGuardian(address guardian, uint64 scope, uint40 notBefore, uint40 expiresAt)
        external;

    /// @notice Removes `guardian` of the caller; it stops counting in this block.
    /// Requirements: the caller named `guardian`.
    /// Emits {GuardianRemoved}.
    function removeGuardian(address guardian) external;

    /// @notice Opens break-glass access of the caller to all categories of `patient` for
    /// `duration` seconds.
    /// Requirements: caller is a credentialed provider; `patient` non-zero and not the caller;
    /// `reasonHash` non-zero; `0 < duration <= emergencyCap()`; no break-glass of the caller to
    /// `patient` is open.
    /// Emits {EmergencyAccessOpened}.
    function openEmergencyAccess(address patient, bytes32 reasonHash, uint40 duration) external;

    /// @notice Closes the open break-glass access of `provider` to `patient` early.
    /// Requirements: caller is `provider` or `patient`; the access is open.
    /// Emits {EmergencyAccessClosed}.
    function closeEmergencyAccess(address patient, address provider) external;

    /// @notice Sets the longest break-glass window for accesses opened from now on. Open
    /// accesses keep the window they were opened with, which the cap in force then bounded; the
    /// patient or the provider can close one early.
    /// Requirements: caller holds the governance role; `0 < cap <= MAX_EMERGENCY_CAP`.
    /// Emits {EmergencyCapSet}.
    function setEmergencyCap(uint40 cap) external;

    /// @notice May `grantee` read category `category` of `patient` now? True when `grantee` is a
    /// credentialed provider and either holds a live grant covering `category` or has open
    /// break-glass access to `patient`.
    function canRead(address grantee, address patient, uint8 category) external view returns (bool);

    /// @notice The categories `grantee` may read of `patient` now (all bits under break-glass).
    function readableCategories(address grantee, address patient) external view returns (uint64);

    /// @notice The categories of `patient` that `grantee` holds by a grant live now, without
    /// checking the grantee's credential or break-glass (callers that checked the credential
    /// already use it to save gas; {canRead} is the full answer).
    function grantedCategories(address grantee, address patient) external view returns (uint64);

    /// @notice The stored grant of `patient` to `grantee`, live or not.
    function grantOf(address patient, address grantee) external view returns (Grant memory);

    /// @notice The stored mandate of `guardian` for `patient`, live or not.
    function guardianOf(address patient, address guardian) external view returns (Guardian memory);

    /// @notice The stored break-glass access of `provider` to `patient`, open or not.
    function emergencyAccessOf(address patient, address provider)
        external
        view
        returns (EmergencyAccess memory);

    /// @notice The longest break-glass window, in seconds.
    function emergencyCap() external view returns (uint40);

    /// @notice The next nonce `signer` must use in a signature.
    function nonces(address signer) external view returns (uint256);
}
