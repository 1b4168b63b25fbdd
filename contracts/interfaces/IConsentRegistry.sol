// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

// How far a signed consent's `issuedAt` may be ahead of the block time: 5 minutes. Signed
// messages are ordered by their signer's clock. Devices and block times agree to within
// seconds when their clocks are set by the network, so minutes leave room for a device that
// drifts and for a slow block, while a clock an hour fast (or an `issuedAt` forged far ahead
// to block every later message) is refused. Both registries use it.
uint40 constant SIGNATURE_SKEW = 5 minutes;

/// @title IConsentRegistry
/// @notice Who may see which categories of a patient's records, for what purpose, until when.
/// @dev A grant is keyed by (patient, grantee); a new grant replaces the previous one whole.
/// Categories are a 64-bit mask (bit `c` is category `c`). Times are unix seconds; a window
/// [notBefore, expiresAt) is live when `notBefore <= block.timestamp < expiresAt`. Only the
/// patient, or a guardian the patient named and who acts within the guardian's own scope and
/// period, changes a patient's grants, directly or by an EIP-712 signature anyone may relay.
///
/// Signed messages are ordered per relationship (patient, grantee), not per signer: the grant
/// slot holds an `epoch` and the `signedAt` of the last signed message applied. A signed grant,
/// revocation or cancellation carries the `epoch` it was signed in and `issuedAt`, the signer's
/// clock, which may be at most {SIGNATURE_SKEW} ahead of the block time; it applies only while
/// `epoch` is the stored epoch and `issuedAt` is after the stored `signedAt`. A signed grant
/// keeps the epoch and sets `signedAt = issuedAt`, so a replay is stale and of two grants the
/// one signed later wins whatever order a relayer chose. Every revocation (direct or signed),
/// every cancellation ({cancelSignatures}, {cancelBySig}) and every direct grant moves to the
/// next epoch and resets `signedAt`: every signature outstanding for the relationship is void,
/// so a revocation wins over every message signed before it was applied, whatever its signer's
/// clock said. A cancellation also revokes a grant applied from a signature of the epoch it
/// closes (a relayer cannot keep a grant alive by applying it just ahead of the cancellation).
/// A withheld message blocks nothing: neither later messages of the same relationship nor any
/// message of another. The slot is never deleted, so a revoked relationship's old signatures
/// stay void. At the last epoch (2^24 - 1) the epoch stays and `signedAt` becomes
/// `type(uint40).max`: signatures are void for good, direct calls keep working.
///
/// A grant counts only when it was made (`grantedAt`) at or after the `validSince` of the
/// grantee's credential: a provider credentialed again after a revocation or a lapse does not
/// get back the grants it held before ({IParticipantRegistry-validSinceOf}), nor break-glass it
/// opened before (`openedAt`). A credential issued again takes effect from the next second
/// (`validSince` is its block time + 1), so a grant made in that same second never counts:
/// grant again once `validSince` has passed.
/// Every state change emits an event carrying the whole new state, so an indexer can rebuild
/// all state from events alone.
interface IConsentRegistry {
    /// @notice A grant as stored: one slot (64 + 8 + 40 + 40 + 24 + 40 + 40 bits). A revoked
    /// grant keeps its slot with no categories, so that `epoch` and `signedAt` stay.
    /// @param categories the categories granted (0: no grant)
    /// @param purpose the purpose-of-use code
    /// @param notBefore start of the window (seconds, inclusive)
    /// @param expiresAt end of the window (seconds, exclusive)
    /// @param epoch the relationship's signature epoch: signed messages of another are void
    /// @param signedAt `issuedAt` of the last signed message applied in this epoch (0: none)
    /// @param grantedAt block time of the grant (0: no grant)
    struct Grant {
        uint64 categories;
        uint8 purpose;
        uint40 notBefore;
        uint40 expiresAt;
        uint24 epoch;
        uint40 signedAt;
        uint40 grantedAt;
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

    /// @notice Governance's bounds on break-glass beside its longest window (one slot).
    /// @dev `maxOpenings` openings per provider and patient within any `period` seconds (at
    /// most {MAX_EMERGENCY_OPENINGS}; a `period` of 0 leaves the frequency unbounded); after
    /// the patient closes one, that provider may not open to that patient again for
    /// `coolingOff` seconds; each opening must be reviewed as justified within
    /// `justifyWithin` seconds; a provider with `maxUnjustified` openings reviewed unjustified
    /// or recorded overdue opens no more until governance clears them; a provider with
    /// `maxPending` openings (to any patients) neither reviewed nor recorded overdue opens no
    /// more until one is (at most {MAX_EMERGENCY_PENDING}; this bound cannot be switched off).
    struct EmergencyPolicy {
        uint8 maxOpenings;
        uint40 period;
        uint40 coolingOff;
        uint40 justifyWithin;
        uint16 maxUnjustified;
        uint16 maxPending;
    }

    /// @notice Where an opening stands in its review.
    /// @dev `Overdue` is recorded by anyone once `reviewBy` passed without a review; governance
    /// may still review it afterwards.
    enum EmergencyReview {
        None,
        Pending,
        Justified,
        Unjustified,
        Overdue
    }

    /// @notice One break-glass opening and its review (three slots).
    /// @dev `clears` is the provider's count of {clearEmergencyUnjustified} when the opening
    /// was recorded overdue: a late justified review uncounts it only while that still holds.
    struct EmergencyOpening {
        address patient;
        uint40 openedAt;
        uint40 reviewBy;
        EmergencyReview status;
        address provider;
        uint32 clears;
        bytes32 reasonHash;
    }

    /// @notice What bounds the next opening of one provider to one patient (one slot).
    /// @dev `recentOpenings` packs the times of the provider's last five openings to the
    /// patient, the latest in its lowest 40 bits.
    struct EmergencyBounds {
        uint40 coolingOffUntil;
        uint200 recentOpenings;
    }

    /// @notice Emitted when `by` (the patient or one of their guardians) grants `grantee` access;
    /// `epoch` and `signedAt` are the relationship's signature state after it (see above).
    event Granted(
        address indexed patient,
        address indexed grantee,
        address indexed by,
        uint64 categories,
        uint8 purpose,
        uint40 notBefore,
        uint40 expiresAt,
        uint24 epoch,
        uint40 signedAt
    );

    /// @notice Emitted when `by` revokes the grant of `grantee` (by a revocation, or by a
    /// cancellation that voids a signed grant); no access remains from this block. `epoch` and
    /// `signedAt` are the relationship's signature state after it.
    event Revoked(
        address indexed patient,
        address indexed grantee,
        address indexed by,
        uint24 epoch,
        uint40 signedAt
    );

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

    /// @notice Emitted when break-glass access is closed before its expiry by `by`, or when the
    /// patient (`by`) refuses an opening that already ended; `by` the patient starts the
    /// policy's cooling-off.
    event EmergencyAccessClosed(address indexed patient, address indexed provider, address by);

    /// @notice Emitted when governance sets the longest break-glass window.
    event EmergencyCapSet(uint40 cap);

    /// @notice Emitted with every {EmergencyAccessOpened}: the opening's id, and when its review
    /// as justified is due.
    event EmergencyJustificationDue(
        uint64 indexed id, address indexed patient, address indexed provider, uint40 reviewBy
    );

    /// @notice Emitted when governance reviews opening `id` of `provider`; `unjustified` is the
    /// provider's count of unjustified openings after the review.
    event EmergencyAccessReviewed(
        uint64 indexed id, address indexed provider, bool justified, uint16 unjustified
    );

    /// @notice Emitted when opening `id` is recorded as overdue (not reviewed as justified by
    /// its deadline); `unjustified` is the provider's count after it.
    event EmergencyAccessOverdue(uint64 indexed id, address indexed provider, uint16 unjustified);

    /// @notice Emitted when governance clears the unjustified openings counted against `provider`.
    event EmergencyUnjustifiedCleared(address indexed provider, uint16 cleared);

    /// @notice Emitted when governance sets the break-glass policy.
    event EmergencyPolicySet(
        uint8 maxOpenings,
        uint40 period,
        uint40 coolingOff,
        uint40 justifyWithin,
        uint16 maxUnjustified,
        uint16 maxPending
    );

    /// @notice Emitted when `patient` sets the categories break-glass never opens.
    event EmergencyRuleSet(address indexed patient, uint64 excluded);

    // ------------------------------------------- signature ordering (issue 14)

    /// @notice Emitted when `by` voids every outstanding signed message of (`patient`,
    /// `grantee`); messages must now be signed in `epoch`, after `signedAt` (0; at the last
    /// epoch `type(uint40).max`: signatures void for good).
    event ConsentSignaturesCancelled(
        address indexed patient,
        address indexed grantee,
        address indexed by,
        uint24 epoch,
        uint40 signedAt
    );

    /// @notice The signed message is stale: signed in `epoch`, at `issuedAt`, while the
    /// relationship is in `currentEpoch` and its last signed message applied was issued at
    /// `signedAt`. A replay, a message older than one applied, or one voided by a direct change
    /// or a cancellation: sign it again in the current epoch.
    error ConsentSignatureStale(
        uint24 epoch, uint40 issuedAt, uint24 currentEpoch, uint40 signedAt
    );

    /// @notice The signed message's `issuedAt` is after `latest`, the block time plus
    /// {SIGNATURE_SKEW}: the signer's clock runs ahead of the chain's; sign again.
    error ConsentSignatureFromFuture(uint40 issuedAt, uint256 latest);

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
    /// @notice The signature is not `signer`'s for this chain, contract and content.
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

    /// @notice `provider` opened break-glass to `patient` `maxOpenings` times within the policy's
    /// period; the next opening is possible at `retryAt`.
    error ConsentEmergencyTooFrequent(address patient, address provider, uint40 retryAt);
    /// @notice `patient` closed an opening of `provider`; it may not reopen before `until`.
    error ConsentEmergencyCoolingOff(address patient, address provider, uint40 until);
    /// @notice `provider` has `unjustified` unjustified or overdue openings, the policy's limit.
    error ConsentEmergencyBlocked(address provider, uint16 unjustified);
    /// @notice There is no opening `id`.
    error ConsentEmergencyOpeningNotFound(uint64 id);
    /// @notice Opening `id` was already reviewed (or recorded overdue, for {recordEmergencyOverdue}).
    error ConsentEmergencyAlreadyReviewed(uint64 id, EmergencyReview status);
    /// @notice Opening `id` may still be justified until `reviewBy`.
    error ConsentEmergencyNotOverdue(uint64 id, uint40 reviewBy);
    /// @notice A patient's rule may only exclude the sensitive categories `sensitive`.
    error ConsentEmergencyRuleNotSensitive(uint64 excluded, uint64 sensitive);
    /// @notice The break-glass policy is outside the hard bounds (see {setEmergencyPolicy}).
    error ConsentInvalidEmergencyPolicy();

    // ------------------------------------------ break-glass review findings (issue 14)

    /// @notice `provider` has `pending` openings neither reviewed nor recorded overdue, the
    /// policy's `maxPending`: it opens no more until governance reviews one (or one is recorded
    /// overdue).
    error ConsentEmergencyTooManyPending(address provider, uint16 pending);

    /// @notice Grants `grantee` access to `categories` of `patient` for `purpose` within
    /// [notBefore, expiresAt), replacing any earlier grant to `grantee`. `notBefore` 0 means now.
    /// A direct grant moves the relationship to its next epoch: outstanding signatures are void.
    /// A grant counts only from the grantee's `validSince` on: one made in the same second as
    /// the grantee's credential was issued again (`validSince` = that block time + 1) never
    /// counts, and nothing reverts; grant once `validSince` has passed.
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
    /// Moves the relationship to its next epoch: outstanding signatures are void (at the last
    /// epoch they are voided for good instead, see above).
    /// Requirements: a grant exists; caller is `patient`, or a guardian live now whose scope
    /// covers the grant's categories.
    /// Emits {Revoked}.
    function revoke(address patient, address grantee) external;

    /// @notice {grant} authorised by `signer`'s EIP-712 signature (EOA or ERC-1271 wallet),
    /// relayed by anyone. Bound to this chain, this contract, the relationship's `epoch`, the
    /// signer's `issuedAt` and `deadline`; keeps the epoch and sets `signedAt` to `issuedAt`.
    /// Requirements: as {grant} with `signer` as the caller; `block.timestamp <= deadline`;
    /// the signature is valid; `epoch` is the stored epoch and `issuedAt` after the stored
    /// `signedAt` (else {ConsentSignatureStale}); `issuedAt` at most {SIGNATURE_SKEW} ahead of
    /// the block time (else {ConsentSignatureFromFuture}).
    /// Emits {Granted}.
    function grantBySig(
        address patient,
        address grantee,
        uint64 categories,
        uint8 purpose,
        uint40 notBefore,
        uint40 expiresAt,
        address signer,
        uint24 epoch,
        uint40 issuedAt,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice {revoke} authorised by `signer`'s EIP-712 signature, relayed by anyone. Moves the
    /// relationship to its next epoch like {revoke}, so every message signed before it was
    /// applied is void. The patient's applies also when there is no grant (it then only moves
    /// the epoch), so that a grant they signed before it cannot be relayed after it.
    /// Requirements: `signer` is `patient`, or a guardian live now whose scope covers the
    /// stored grant's categories, and for a guardian a grant exists (else
    /// {ConsentGrantNotFound}); `issuedAt` at most {SIGNATURE_SKEW} ahead of the block time
    /// (else {ConsentSignatureFromFuture}); as {grantBySig} for the deadline, signature and
    /// ordering.
    /// Emits {Revoked}.
    function revokeBySig(
        address patient,
        address grantee,
        address signer,
        uint24 epoch,
        uint40 issuedAt,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Voids every outstanding signed message of (`patient`, `grantee`): moves to the
    /// next epoch and resets `signedAt`. A grant applied from a signature of the epoch this
    /// closes (`signedAt` non-zero) is revoked as well: it was signed before the cancellation,
    /// and a relayer holding it could otherwise apply it just ahead of the cancellation. A
    /// direct grant is left as it is.
    /// Requirements: caller is `patient`, or a guardian live now whose scope covers the stored
    /// grant's categories, and for a guardian a grant exists (else {ConsentGrantNotFound}).
    /// Emits {Revoked} when it revokes a signed grant, then {ConsentSignaturesCancelled}.
    function cancelSignatures(address patient, address grantee) external;

    /// @notice {cancelSignatures} authorised by `signer`'s EIP-712 signature, relayed by
    /// anyone: a patient without gas voids a signature they gave away, and revokes the grant
    /// of one that a relayer applied before the cancellation (see {cancelSignatures}).
    /// Requirements: as {cancelSignatures} with `signer` as the caller; as {revokeBySig} for
    /// the deadline, clock, signature and ordering.
    /// Emits {Revoked} when it revokes a signed grant, then {ConsentSignaturesCancelled}.
    function cancelBySig(
        address patient,
        address grantee,
        address signer,
        uint24 epoch,
        uint40 issuedAt,
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

    /// @notice Opens break-glass access of the caller to all categories of `patient` (less those
    /// the patient's rule excludes) for `duration` seconds. No one approves it: within the
    /// policy's bounds an emergency never waits. It must be reviewed as justified within the
    /// policy's `justifyWithin`: the provider gives the reason and its salt to the patient and
    /// to governance, who check them against `reasonHash`.
    /// Requirements: caller is a credentialed provider with fewer unjustified openings than the
    /// policy's `maxUnjustified`; `patient` non-zero and not the caller; `reasonHash` non-zero;
    /// `0 < duration <= emergencyCap()`; no break-glass of the caller to `patient` is open; the
    /// patient's cooling-off for the caller is over; fewer than the policy's `maxOpenings`
    /// openings of the caller to `patient` within its `period`; fewer than the policy's
    /// `maxPending` openings of the caller to anyone pending review.
    /// Break-glass counts only while the caller's credential run that opened it lasts: after a
    /// revocation and re-issue it is void ({IParticipantRegistry-validSinceOf}).
    /// Emits {EmergencyAccessOpened} and {EmergencyJustificationDue}.
    /// @param reasonHash a salted commitment, keccak256(abi.encode(bytes32 salt, string reason))
    /// with a fresh random salt, so no dictionary of likely reasons recovers it
    /// @return id the opening's id, for {reviewEmergencyAccess} and {recordEmergencyOverdue}
    function openEmergencyAccess(address patient, bytes32 reasonHash, uint40 duration)
        external
        returns (uint64 id);

    /// @notice Closes the open break-glass access of `provider` to `patient` early. When the
    /// patient closes it, `provider` may not open to them again for the policy's `coolingOff`.
    /// The patient may also refuse an opening that already ended (closed by the provider or
    /// expired) while its latest opening is within the policy's `period` or `justifyWithin`,
    /// whichever is longer: that starts the same cooling-off, so closing first does not dodge it.
    /// Requirements: caller is `provider` or `patient`; the access is open, or the caller is the
    /// patient and the provider's latest opening to them is that recent.
    /// Emits {EmergencyAccessClosed}.
    function closeEmergencyAccess(address patient, address provider) external;

    /// @notice Sets the break-glass policy for openings from now on (the cap stays
    /// {setEmergencyCap}'s).
    /// Requirements: caller holds the governance role; `1 <= maxOpenings <=
    /// MAX_EMERGENCY_OPENINGS`; `period` and `coolingOff` at most a year; `1 hours <=
    /// justifyWithin <= 30 days`; `maxUnjustified >= 1`; `1 <= maxPending <=
    /// MAX_EMERGENCY_PENDING`. A `period` or `coolingOff` of 0 switches that bound off;
    /// `maxPending` always holds.
    /// Emits {EmergencyPolicySet}.
    function setEmergencyPolicy(EmergencyPolicy calldata policy) external;

    /// @notice Records governance's review of opening `id`: justified or not. An unjustified
    /// opening counts against its provider; an overdue one reviewed as justified late stops
    /// counting (unless governance cleared the provider's count since it was recorded).
    /// Requirements: caller holds the governance role; the opening exists and is pending or
    /// overdue.
    /// Emits {EmergencyAccessReviewed}.
    function reviewEmergencyAccess(uint64 id, bool justified) external;

    /// @notice Records opening `id` as overdue: not reviewed by its deadline. Anyone may call it;
    /// the opening then counts against its provider.
    /// Requirements: the opening is pending and its `reviewBy` has passed.
    /// Emits {EmergencyAccessOverdue}.
    function recordEmergencyOverdue(uint64 id) external;

    /// @notice Clears the unjustified openings counted against `provider` (after it accounted
    /// for them), so that it may open break-glass again.
    /// Requirements: caller holds the governance role.
    /// Emits {EmergencyUnjustifiedCleared}.
    function clearEmergencyUnjustified(address provider) external;

    /// @notice Sets the caller's standing rule: the categories break-glass never opens to any
    /// provider (a grant the caller gave still counts). Replaces the earlier rule; 0 clears it.
    /// Requirements: `excluded` holds only sensitive categories ({EMERGENCY_SENSITIVE}).
    /// Emits {EmergencyRuleSet}.
    function setEmergencyRule(uint64 excluded) external;

    /// @notice Sets the longest break-glass window for accesses opened from now on. Open
    /// accesses keep the window they were opened with, which the cap in force then bounded; the
    /// patient or the provider can close one early.
    /// Requirements: caller holds the governance role; `0 < cap <= MAX_EMERGENCY_CAP`.
    /// Emits {EmergencyCapSet}.
    function setEmergencyCap(uint40 cap) external;

    /// @notice May `grantee` read category `category` of `patient` now? True when `grantee` is a
    /// credentialed provider and either holds a live grant covering `category` or has open
    /// break-glass access to `patient` and the patient's rule does not exclude `category`.
    function canRead(address grantee, address patient, uint8 category) external view returns (bool);

    /// @notice The categories `grantee` may read of `patient` now (under break-glass: all bits but
    /// those the patient's rule excludes, plus any granted).
    function readableCategories(address grantee, address patient) external view returns (uint64);

    /// @notice The categories of `patient` that `grantee` holds by a grant live now, without
    /// checking the grantee's credential or break-glass (callers that checked the credential
    /// already use it to save gas; {canRead} is the full answer). A grant made before the
    /// `validSince` of the grantee's credential counts for nothing.
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

    /// @notice The break-glass policy in force.
    function emergencyPolicy() external view returns (EmergencyPolicy memory);

    /// @notice Opening `id` as stored (status `None`: no such opening).
    function emergencyOpening(uint64 id) external view returns (EmergencyOpening memory);

    /// @notice How many openings there have been; ids run from 1 to this.
    function emergencyOpeningCount() external view returns (uint64);

    /// @notice Whether opening `id` is overdue now: recorded so, or pending past its deadline.
    function isEmergencyOverdue(uint64 id) external view returns (bool);

    /// @notice The unjustified openings (reviewed so or recorded overdue) counted against
    /// `provider`.
    function emergencyUnjustified(address provider) external view returns (uint16);

    /// @notice The openings of `provider` neither reviewed nor recorded overdue.
    function emergencyPending(address provider) external view returns (uint16);

    /// @notice The cooling-off and recent openings bounding `provider`'s next opening to `patient`.
    function emergencyBoundsOf(address patient, address provider)
        external
        view
        returns (EmergencyBounds memory);

    /// @notice The categories `patient`'s rule keeps out of break-glass.
    function emergencyRuleOf(address patient) external view returns (uint64);
}
