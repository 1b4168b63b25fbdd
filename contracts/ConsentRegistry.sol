// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {IConsentRegistry, SIGNATURE_SKEW} from "./interfaces/IConsentRegistry.sol";
import {IParticipantRegistry} from "./interfaces/IParticipantRegistry.sol";

/// @title ConsentRegistry
/// @notice Patients' grants, guardians and break-glass access. See {IConsentRegistry}.
contract ConsentRegistry is IConsentRegistry, AccessControl, EIP712 {
    /// @notice The consortium's governance role: sets the break-glass cap.
    bytes32 public constant GOVERNANCE_ROLE = keccak256("GOVERNANCE_ROLE");
    /// @notice Hard upper bound of the break-glass cap: 7 days.
    uint40 public constant MAX_EMERGENCY_CAP = 7 days;
    /// @notice Hard upper bound of a policy's openings per provider and patient and period:
    /// {EmergencyBounds} keeps the times of this many.
    uint8 public constant MAX_EMERGENCY_OPENINGS = 5;
    /// @notice Hard upper bound of a policy's openings per provider pending review.
    uint16 public constant MAX_EMERGENCY_PENDING = 1000;
    /// @notice The categories a patient's rule may keep out of break-glass: mental-health (10),
    /// sexual-health (11), substance-use (12) and genetics (13). Everything else stays open to
    /// an emergency, since treating blind is the greater harm.
    uint64 public constant EMERGENCY_SENSITIVE = (1 << 10) | (1 << 11) | (1 << 12) | (1 << 13);
    /// @notice EIP-712 type hash of a signed grant.
    bytes32 public constant GRANT_TYPEHASH = keccak256(
        "Grant(address patient,address grantee,uint64 categories,uint8 purpose,uint40 notBefore,uint40 expiresAt,address signer,uint24 epoch,uint40 issuedAt,uint256 deadline)"
    );
    /// @notice EIP-712 type hash of a signed revocation.
    bytes32 public constant REVOKE_TYPEHASH = keccak256(
        "Revoke(address patient,address grantee,address signer,uint24 epoch,uint40 issuedAt,uint256 deadline)"
    );
    /// @notice EIP-712 type hash of a signed cancellation of a relationship's signatures.
    bytes32 public constant CANCEL_TYPEHASH = keccak256(
        "CancelSignatures(address patient,address grantee,address signer,uint24 epoch,uint40 issuedAt,uint256 deadline)"
    );

    // ------------------------------------------- signature ordering (issue 14)

    /// @notice How far a signed message's `issuedAt` may be ahead of the block time: 5 minutes
    /// (see {SIGNATURE_SKEW}).
    uint40 public constant MAX_SIGNATURE_SKEW = SIGNATURE_SKEW;

    /// @dev One provider's break-glass standing (one slot): its openings counted unjustified,
    /// those pending review, and how often governance cleared the former.
    struct EmergencyStanding {
        uint16 unjustified;
        uint16 pending;
        uint32 clears;
    }

    /// @notice Where credentials are checked.
    IParticipantRegistry public immutable participants;

    mapping(address patient => mapping(address grantee => Grant)) private _grants;
    mapping(address patient => mapping(address guardian => Guardian)) private _guardians;
    mapping(address patient => mapping(address provider => EmergencyAccess)) private _emergency;
    uint40 private _emergencyCap;

    // Break-glass policy, openings and their reviews.
    EmergencyPolicy private _emergencyPolicy;
    uint64 private _emergencyOpeningCount;
    mapping(uint64 id => EmergencyOpening) private _emergencyOpenings;
    mapping(address patient => mapping(address provider => EmergencyBounds)) private
        _emergencyBounds;
    mapping(address provider => EmergencyStanding) private _emergencyStanding;
    mapping(address patient => uint64) private _emergencyExcluded;

    /// @param admin receives the admin and governance roles
    /// @param participants_ the credential registry
    /// @param emergencyCap_ the initial break-glass cap, in seconds
    constructor(address admin, IParticipantRegistry participants_, uint40 emergencyCap_)
        EIP712("medrec.ConsentRegistry", "1")
    {
        if (admin == address(0) || address(participants_) == address(0)) {
            revert ConsentZeroAddress();
        }
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GOVERNANCE_ROLE, admin);
        participants = participants_;
        _setEmergencyCap(emergencyCap_);
        // A privacy officer's defaults: three openings per provider and patient in 30 days, a
        // week's cooling-off after the patient closes one, 72 hours to justify each, and a
        // provider leaving three unjustified opens no more until governance clears it; five
        // openings of one provider awaiting review, to any patients, and it opens no more until
        // governance reviews one.
        _setEmergencyPolicy(
            EmergencyPolicy({
                maxOpenings: 3,
                period: 30 days,
                coolingOff: 7 days,
                justifyWithin: 72 hours,
                maxUnjustified: 3,
                maxPending: 5
            })
        );
    }

    // ------------------------------------------------------------------ grants

    /// @inheritdoc IConsentRegistry
    function grant(
        address patient,
        address grantee,
        uint64 categories,
        uint8 purpose,
        uint40 notBefore,
        uint40 expiresAt
    ) external {
        _grant(msg.sender, patient, grantee, categories, purpose, notBefore, expiresAt, 0);
    }

    /// @inheritdoc IConsentRegistry
    function revoke(address patient, address grantee) external {
        _revoke(msg.sender, patient, grantee, false);
    }

    /// @inheritdoc IConsentRegistry
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
    ) external {
        bytes32 structHash = keccak256(
            abi.encode(
                GRANT_TYPEHASH,
                patient,
                grantee,
                categories,
                purpose,
                notBefore,
                expiresAt,
                signer,
                epoch,
                issuedAt,
                deadline
            )
        );
        _checkSignature(structHash, patient, grantee, signer, epoch, issuedAt, deadline, signature);
        _grant(signer, patient, grantee, categories, purpose, notBefore, expiresAt, issuedAt);
    }

    /// @inheritdoc IConsentRegistry
    function revokeBySig(
        address patient,
        address grantee,
        address signer,
        uint24 epoch,
        uint40 issuedAt,
        uint256 deadline,
        bytes calldata signature
    ) external {
        bytes32 structHash = keccak256(
            abi.encode(REVOKE_TYPEHASH, patient, grantee, signer, epoch, issuedAt, deadline)
        );
        _checkSignature(structHash, patient, grantee, signer, epoch, issuedAt, deadline, signature);
        _revoke(signer, patient, grantee, true);
    }

    /// @inheritdoc IConsentRegistry
    function cancelSignatures(address patient, address grantee) external {
        _cancel(msg.sender, patient, grantee);
    }

    /// @inheritdoc IConsentRegistry
    function cancelBySig(
        address patient,
        address grantee,
        address signer,
        uint24 epoch,
        uint40 issuedAt,
        uint256 deadline,
        bytes calldata signature
    ) external {
        bytes32 structHash = keccak256(
            abi.encode(CANCEL_TYPEHASH, patient, grantee, signer, epoch, issuedAt, deadline)
        );
        _checkSignature(structHash, patient, grantee, signer, epoch, issuedAt, deadline, signature);
        _cancel(signer, patient, grantee);
    }

    // --------------------------------------------------------------- guardians

    /// @inheritdoc IConsentRegistry
    function setGuardian(address guardian, uint64 scope, uint40 notBefore, uint40 expiresAt)
        external
    {
        if (guardian == address(0)) revert ConsentZeroAddress();
        if (guardian == msg.sender) revert ConsentSelf();
        if (scope == 0) revert ConsentNoCategories();
        notBefore = _checkWindow(notBefore, expiresAt);
        _guardians[msg.sender][guardian] =
            Guardian({scope: scope, notBefore: notBefore, expiresAt: expiresAt});
        emit GuardianSet(msg.sender, guardian, scope, notBefore, expiresAt);
    }

    /// @inheritdoc IConsentRegistry
    function removeGuardian(address guardian) external {
        if (_guardians[msg.sender][guardian].scope == 0) {
            revert ConsentGuardianNotFound(msg.sender, guardian);
        }
        delete _guardians[msg.sender][guardian];
        emit GuardianRemoved(msg.sender, guardian);
    }

    // ------------------------------------------------------------- break-glass

    /// @inheritdoc IConsentRegistry
    function openEmergencyAccess(address patient, bytes32 reasonHash, uint40 duration)
        external
        returns (uint64 id)
    {
        if (!participants.isCredentialed(msg.sender, IParticipantRegistry.Role.Provider)) {
            revert ConsentNotProvider(msg.sender);
        }
        if (patient == address(0)) revert ConsentZeroAddress();
        if (patient == msg.sender) revert ConsentSelf();
        if (reasonHash == bytes32(0)) revert ConsentNoReason();
        uint40 cap = _emergencyCap;
        if (duration == 0 || duration > cap) revert ConsentEmergencyDuration(duration, cap);
        if (_emergencyLive(_emergency[patient][msg.sender])) {
            revert ConsentEmergencyActive(patient, msg.sender);
        }
        uint40 nowTs = uint40(block.timestamp);
        EmergencyPolicy memory policy = _emergencyPolicy;
        _checkEmergencyBounds(patient, policy, nowTs);
        uint40 expiresAt = nowTs + duration;
        _emergency[patient][msg.sender] = EmergencyAccess({openedAt: nowTs, expiresAt: expiresAt});
        id = ++_emergencyOpeningCount;
        uint40 reviewBy = nowTs + policy.justifyWithin;
        _emergencyOpenings[id] = EmergencyOpening({
            patient: patient,
            openedAt: nowTs,
            reviewBy: reviewBy,
            status: EmergencyReview.Pending,
            provider: msg.sender,
            clears: 0,
            reasonHash: reasonHash
        });
        emit EmergencyAccessOpened(patient, msg.sender, reasonHash, nowTs, expiresAt);
        emit EmergencyJustificationDue(id, patient, msg.sender, reviewBy);
    }

    /// @inheritdoc IConsentRegistry
    function closeEmergencyAccess(address patient, address provider) external {
        if (msg.sender != patient && msg.sender != provider) {
            revert ConsentUnauthorized(patient, msg.sender);
        }
        bool live = _emergencyLive(_emergency[patient][provider]);
        if (msg.sender == patient) {
            // The patient said no: the provider cannot simply open again, even when it closed
            // the opening itself (or let a short one expire) before the patient could.
            EmergencyBounds storage b = _emergencyBounds[patient][provider];
            EmergencyPolicy memory policy = _emergencyPolicy;
            if (!live) {
                // The latest opening's time, in the lowest 40 bits.
                // forge-lint: disable-next-line(unsafe-typecast)
                uint40 latest = uint40(b.recentOpenings);
                uint40 window =
                    policy.period > policy.justifyWithin ? policy.period : policy.justifyWithin;
                if (latest == 0 || block.timestamp >= uint256(latest) + window) {
                    revert ConsentEmergencyNotFound(patient, provider);
                }
            }
            b.coolingOffUntil = uint40(block.timestamp) + policy.coolingOff;
        } else if (!live) {
            revert ConsentEmergencyNotFound(patient, provider);
        }
        delete _emergency[patient][provider];
        emit EmergencyAccessClosed(patient, provider, msg.sender);
    }

    /// @inheritdoc IConsentRegistry
    function setEmergencyCap(uint40 cap) external onlyRole(GOVERNANCE_ROLE) {
        _setEmergencyCap(cap);
    }

    /// @inheritdoc IConsentRegistry
    function setEmergencyPolicy(EmergencyPolicy calldata policy)
        external
        onlyRole(GOVERNANCE_ROLE)
    {
        _setEmergencyPolicy(policy);
    }

    /// @inheritdoc IConsentRegistry
    function reviewEmergencyAccess(uint64 id, bool justified) external onlyRole(GOVERNANCE_ROLE) {
        EmergencyOpening storage o = _emergencyOpenings[id];
        EmergencyReview status = o.status;
        if (status == EmergencyReview.None) revert ConsentEmergencyOpeningNotFound(id);
        if (status != EmergencyReview.Pending && status != EmergencyReview.Overdue) {
            revert ConsentEmergencyAlreadyReviewed(id, status);
        }
        address provider = o.provider;
        EmergencyStanding storage st = _emergencyStanding[provider];
        uint16 unjustified = st.unjustified;
        if (status == EmergencyReview.Pending) {
            // Counted pending since its opening, so at least 1.
            st.pending -= 1;
            if (!justified) unjustified += 1;
        } else if (justified && o.clears == st.clears && unjustified > 0) {
            // Justified late: it no longer counts, unless governance cleared the count since
            // it was recorded overdue (then it is no longer in it, and a later one is).
            unjustified -= 1;
        }
        st.unjustified = unjustified;
        o.status = justified ? EmergencyReview.Justified : EmergencyReview.Unjustified;
        emit EmergencyAccessReviewed(id, provider, justified, unjustified);
    }

    /// @inheritdoc IConsentRegistry
    function recordEmergencyOverdue(uint64 id) external {
        EmergencyOpening storage o = _emergencyOpenings[id];
        EmergencyReview status = o.status;
        if (status == EmergencyReview.None) revert ConsentEmergencyOpeningNotFound(id);
        if (status != EmergencyReview.Pending) revert ConsentEmergencyAlreadyReviewed(id, status);
        uint40 reviewBy = o.reviewBy;
        if (block.timestamp < reviewBy) revert ConsentEmergencyNotOverdue(id, reviewBy);
        address provider = o.provider;
        EmergencyStanding storage st = _emergencyStanding[provider];
        uint16 unjustified = st.unjustified + 1;
        st.unjustified = unjustified;
        st.pending -= 1;
        o.status = EmergencyReview.Overdue;
        o.clears = st.clears;
        emit EmergencyAccessOverdue(id, provider, unjustified);
    }

    /// @inheritdoc IConsentRegistry
    function clearEmergencyUnjustified(address provider) external onlyRole(GOVERNANCE_ROLE) {
        EmergencyStanding storage st = _emergencyStanding[provider];
        uint16 cleared = st.unjustified;
        st.unjustified = 0;
        // Wrapping is harmless: only equality with an opening's recorded count matters.
        unchecked {
            st.clears += 1;
        }
        emit EmergencyUnjustifiedCleared(provider, cleared);
    }

    /// @inheritdoc IConsentRegistry
    function setEmergencyRule(uint64 excluded) external {
        if (excluded & ~EMERGENCY_SENSITIVE != 0) {
            revert ConsentEmergencyRuleNotSensitive(excluded, EMERGENCY_SENSITIVE);
        }
        _emergencyExcluded[msg.sender] = excluded;
        emit EmergencyRuleSet(msg.sender, excluded);
    }

    // ------------------------------------------------------------------- views

    /// @inheritdoc IConsentRegistry
    function canRead(address grantee, address patient, uint8 category)
        external
        view
        returns (bool)
    {
        return category < 64 && _readable(grantee, patient) & (uint64(1) << category) != 0;
    }

    /// @inheritdoc IConsentRegistry
    function readableCategories(address grantee, address patient) external view returns (uint64) {
        return _readable(grantee, patient);
    }

    /// @inheritdoc IConsentRegistry
    function grantedCategories(address grantee, address patient) external view returns (uint64) {
        return _granted(grantee, patient, participants.validSinceOf(grantee));
    }

    /// @inheritdoc IConsentRegistry
    function grantOf(address patient, address grantee) external view returns (Grant memory) {
        return _grants[patient][grantee];
    }

    /// @inheritdoc IConsentRegistry
    function guardianOf(address patient, address guardian) external view returns (Guardian memory) {
        return _guardians[patient][guardian];
    }

    /// @inheritdoc IConsentRegistry
    function emergencyAccessOf(address patient, address provider)
        external
        view
        returns (EmergencyAccess memory)
    {
        return _emergency[patient][provider];
    }

    /// @inheritdoc IConsentRegistry
    function emergencyCap() external view returns (uint40) {
        return _emergencyCap;
    }

    /// @inheritdoc IConsentRegistry
    function emergencyPolicy() external view returns (EmergencyPolicy memory) {
        return _emergencyPolicy;
    }

    /// @inheritdoc IConsentRegistry
    function emergencyOpening(uint64 id) external view returns (EmergencyOpening memory) {
        return _emergencyOpenings[id];
    }

    /// @inheritdoc IConsentRegistry
    function emergencyOpeningCount() external view returns (uint64) {
        return _emergencyOpeningCount;
    }

    /// @inheritdoc IConsentRegistry
    function isEmergencyOverdue(uint64 id) external view returns (bool) {
        EmergencyOpening storage o = _emergencyOpenings[id];
        return o.status == EmergencyReview.Overdue
            || (o.status == EmergencyReview.Pending && block.timestamp >= o.reviewBy);
    }

    /// @inheritdoc IConsentRegistry
    function emergencyUnjustified(address provider) external view returns (uint16) {
        return _emergencyStanding[provider].unjustified;
    }

    /// @inheritdoc IConsentRegistry
    function emergencyPending(address provider) external view returns (uint16) {
        return _emergencyStanding[provider].pending;
    }

    /// @inheritdoc IConsentRegistry
    function emergencyBoundsOf(address patient, address provider)
        external
        view
        returns (EmergencyBounds memory)
    {
        return _emergencyBounds[patient][provider];
    }

    /// @inheritdoc IConsentRegistry
    function emergencyRuleOf(address patient) external view returns (uint64) {
        return _emergencyExcluded[patient];
    }

    /// @notice The EIP-712 domain separator of this contract on this chain.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ---------------------------------------------------------------- internal

    /// @dev `signedAt` is the signed message's `issuedAt`, or 0 for a direct grant, which moves
    /// the relationship to its next epoch.
    function _grant(
        address caller,
        address patient,
        address grantee,
        uint64 categories,
        uint8 purpose,
        uint40 notBefore,
        uint40 expiresAt,
        uint40 signedAt
    ) private {
        if (patient == address(0) || grantee == address(0)) {
            revert ConsentZeroAddress();
        }
        if (grantee == patient) revert ConsentSelf();
        if (categories == 0) revert ConsentNoCategories();
        if (purpose == 0) revert ConsentNoPurpose();
        notBefore = _checkWindow(notBefore, expiresAt);
        Grant storage slot = _grants[patient][grantee];
        // A guardian may neither grant nor overwrite categories outside its scope.
        if (caller != patient) {
            _requireGuardian(patient, caller, categories | slot.categories, expiresAt);
        }
        uint24 epoch = slot.epoch;
        if (signedAt == 0) (epoch, signedAt) = _voidSignatures(epoch);
        _grants[patient][grantee] = Grant({
            categories: categories,
            purpose: purpose,
            notBefore: notBefore,
            expiresAt: expiresAt,
            epoch: epoch,
            signedAt: signedAt,
            grantedAt: uint40(block.timestamp)
        });
        emit Granted(
            patient, grantee, caller, categories, purpose, notBefore, expiresAt, epoch, signedAt
        );
    }

    /// @dev A revocation, direct or signed, moves the relationship to its next epoch: it wins
    /// over every message signed in the epoch it closes, whatever their `issuedAt` and the
    /// order a relayer chose. The slot keeps its epoch: never deleted. The patient's signed
    /// revocation applies without a grant too, so that a grant they signed and gave away
    /// cannot follow it; a guardian's needs a grant within its scope, so that a guardian
    /// cannot move relationships it has no say in.
    function _revoke(address caller, address patient, address grantee, bool signed) private {
        Grant storage slot = _grants[patient][grantee];
        uint64 categories = slot.categories;
        if (categories == 0 && !signed) revert ConsentGrantNotFound(patient, grantee);
        if (caller != patient) {
            _requireGuardian(patient, caller, categories, 0);
            if (categories == 0) revert ConsentGrantNotFound(patient, grantee);
        }
        (uint24 epoch, uint40 signedAt) = _voidSignatures(slot.epoch);
        _grants[patient][grantee] = Grant({
            categories: 0,
            purpose: 0,
            notBefore: 0,
            expiresAt: 0,
            epoch: epoch,
            signedAt: signedAt,
            grantedAt: 0
        });
        emit Revoked(patient, grantee, caller, epoch, signedAt);
    }

    /// @dev Moves the relationship to its next epoch. A grant applied from a signature of the
    /// closing epoch (`signedAt` a real `issuedAt`) was signed before this cancellation: a
    /// relayer may have applied it just ahead of the cancellation to keep it alive, so it is
    /// revoked too. A direct grant (`signedAt` 0, or the saturation mark) stays. A guardian
    /// cancels only where a grant within its scope exists, as for {_revoke}.
    function _cancel(address caller, address patient, address grantee) private {
        if (patient == address(0) || grantee == address(0)) revert ConsentZeroAddress();
        Grant storage slot = _grants[patient][grantee];
        uint64 categories = slot.categories;
        if (caller != patient) {
            _requireGuardian(patient, caller, categories, 0);
            if (categories == 0) revert ConsentGrantNotFound(patient, grantee);
        }
        uint40 lastSigned = slot.signedAt;
        (uint24 epoch, uint40 signedAt) = _voidSignatures(slot.epoch);
        if (categories != 0 && lastSigned != 0 && lastSigned != type(uint40).max) {
            _grants[patient][grantee] = Grant({
                categories: 0,
                purpose: 0,
                notBefore: 0,
                expiresAt: 0,
                epoch: epoch,
                signedAt: signedAt,
                grantedAt: 0
            });
            emit Revoked(patient, grantee, caller, epoch, signedAt);
        } else {
            slot.epoch = epoch;
            slot.signedAt = signedAt;
        }
        emit ConsentSignaturesCancelled(patient, grantee, caller, epoch, signedAt);
    }

    /// @dev The epoch and `signedAt` after a change that voids the relationship's outstanding
    /// signatures: the next epoch with nothing signed yet. At the last epoch (2^24 - 1) the
    /// epoch stays and `signedAt` takes its maximum, which no `issuedAt` passes: signatures
    /// are void for good, while direct calls keep working instead of overflowing.
    function _voidSignatures(uint24 epoch) private pure returns (uint24, uint40) {
        if (epoch == type(uint24).max) return (epoch, type(uint40).max);
        unchecked {
            return (epoch + 1, 0);
        }
    }

    /// @dev Reverts unless `guardian` is live for `patient` now, its scope covers `categories`,
    /// and its mandate lasts at least until `until` (0: no such bound).
    function _requireGuardian(address patient, address guardian, uint64 categories, uint40 until)
        private
        view
    {
        Guardian memory gd = _guardians[patient][guardian];
        if (gd.scope == 0 || block.timestamp < gd.notBefore || block.timestamp >= gd.expiresAt) {
            revert ConsentUnauthorized(patient, guardian);
        }
        if (categories & ~gd.scope != 0 || until > gd.expiresAt) {
            revert ConsentGuardianOutOfScope(patient, guardian);
        }
    }

    /// @dev Reverts unless the signature is `signer`'s, within its deadline, and in order for
    /// the relationship: its epoch current and `issuedAt` after the last signed message applied.
    function _checkSignature(
        bytes32 structHash,
        address patient,
        address grantee,
        address signer,
        uint24 epoch,
        uint40 issuedAt,
        uint256 deadline,
        bytes calldata signature
    ) private view {
        if (block.timestamp > deadline) {
            revert ConsentSignatureExpired(deadline);
        }
        // A signer's clock orders its messages, so it may not run ahead of the chain's by more
        // than the skew: else a message signed earlier on a fast clock (or forged far ahead)
        // would be ordered after every message signed later.
        uint256 latest;
        // Block times are far below 2^256 - 5 minutes.
        unchecked {
            latest = block.timestamp + MAX_SIGNATURE_SKEW;
        }
        if (issuedAt > latest) revert ConsentSignatureFromFuture(issuedAt, latest);
        bytes32 digest = _hashTypedDataV4(structHash);
        // The key's own signature first, then ERC-1271: an EOA's signature is checked without
        // looking up the signer's (cold) code, which is most of what a relayed consent costs
        // over a direct one.
        // The error's argument only details a failure that `err` already reports.
        // slither-disable-next-line unused-return
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, signature);
        if (
            (err != ECDSA.RecoverError.NoError || recovered != signer)
                && !SignatureChecker.isValidERC1271SignatureNowCalldata(signer, digest, signature)
        ) {
            revert ConsentInvalidSignature(signer);
        }
        Grant storage slot = _grants[patient][grantee];
        uint24 current = slot.epoch;
        uint40 signedAt = slot.signedAt;
        if (epoch != current || issuedAt <= signedAt) {
            revert ConsentSignatureStale(epoch, issuedAt, current, signedAt);
        }
    }

    /// @dev Returns the effective not-before (0 means now) after checking the window.
    function _checkWindow(uint40 notBefore, uint40 expiresAt) private view returns (uint40) {
        uint40 nowTs = uint40(block.timestamp);
        if (notBefore == 0) notBefore = nowTs;
        if (expiresAt <= notBefore || expiresAt <= nowTs) {
            revert ConsentInvalidWindow(notBefore, expiresAt);
        }
        return notBefore;
    }

    function _readable(address grantee, address patient) private view returns (uint64 mask) {
        if (!participants.isCredentialed(grantee, IParticipantRegistry.Role.Provider)) return 0;
        // Consent given, and break-glass opened, before the grantee's current credential run
        // began does not count: a revocation ends both for good.
        uint40 validSince = participants.validSinceOf(grantee);
        mask = _granted(grantee, patient, validSince);
        EmergencyAccess memory e = _emergency[patient][grantee];
        if (mask != type(uint64).max && _emergencyLive(e) && e.openedAt >= validSince) {
            // The patient's standing rule holds under break-glass; a grant still counts.
            mask |= ~_emergencyExcluded[patient];
        }
    }

    function _granted(address grantee, address patient, uint40 validSince)
        private
        view
        returns (uint64)
    {
        Grant memory g = _grants[patient][grantee];
        if (block.timestamp < g.notBefore || block.timestamp >= g.expiresAt) return 0;
        if (g.grantedAt < validSince) return 0;
        return g.categories;
    }

    function _emergencyLive(EmergencyAccess memory e) private view returns (bool) {
        return block.timestamp < e.expiresAt;
    }

    /// @dev Reverts unless the caller may open break-glass to `patient` now under `policy`,
    /// and records this opening's time among the recent ones.
    function _checkEmergencyBounds(address patient, EmergencyPolicy memory policy, uint40 nowTs)
        private
    {
        EmergencyStanding storage st = _emergencyStanding[msg.sender];
        uint16 unjustified = st.unjustified;
        if (unjustified >= policy.maxUnjustified) {
            revert ConsentEmergencyBlocked(msg.sender, unjustified);
        }
        EmergencyBounds storage b = _emergencyBounds[patient][msg.sender];
        uint40 coolingOffUntil = b.coolingOffUntil;
        if (nowTs < coolingOffUntil) {
            revert ConsentEmergencyCoolingOff(patient, msg.sender, coolingOffUntil);
        }
        uint200 recent = b.recentOpenings;
        // Times only grow, so `maxOpenings` openings fall within the period exactly when the
        // `maxOpenings`-th latest does. Casting keeps the 40 bits of that one time.
        // forge-lint: disable-next-line(unsafe-typecast)
        uint40 nth = uint40(recent >> (40 * (policy.maxOpenings - 1)));
        if (nth != 0 && nowTs < nth + policy.period) {
            revert ConsentEmergencyTooFrequent(patient, msg.sender, nth + policy.period);
        }
        // Bounds one provider over all patients: per patient alone, rotating patients is free.
        uint16 pending = st.pending;
        if (pending >= policy.maxPending) {
            revert ConsentEmergencyTooManyPending(msg.sender, pending);
        }
        st.pending = pending + 1;
        // Shifting drops the oldest of the five.
        b.recentOpenings = (recent << 40) | nowTs;
    }

    function _setEmergencyPolicy(EmergencyPolicy memory policy) private {
        if (
            policy.maxOpenings == 0 || policy.maxOpenings > MAX_EMERGENCY_OPENINGS
                || policy.period > 365 days || policy.coolingOff > 365 days
                || policy.justifyWithin < 1 hours || policy.justifyWithin > 30 days
                || policy.maxUnjustified == 0 || policy.maxPending == 0
                || policy.maxPending > MAX_EMERGENCY_PENDING
        ) revert ConsentInvalidEmergencyPolicy();
        _emergencyPolicy = policy;
        emit EmergencyPolicySet(
            policy.maxOpenings,
            policy.period,
            policy.coolingOff,
            policy.justifyWithin,
            policy.maxUnjustified,
            policy.maxPending
        );
    }

    function _setEmergencyCap(uint40 cap) private {
        if (cap == 0 || cap > MAX_EMERGENCY_CAP) revert ConsentInvalidCap(cap, MAX_EMERGENCY_CAP);
        _emergencyCap = cap;
        emit EmergencyCapSet(cap);
    }
}
