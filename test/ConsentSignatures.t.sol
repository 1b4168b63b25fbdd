// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Base} from "./Base.t.sol";
import {StudyRegistry} from "../contracts/StudyRegistry.sol";
import {IConsentRegistry} from "../contracts/interfaces/IConsentRegistry.sol";
import {IParticipantRegistry} from "../contracts/interfaces/IParticipantRegistry.sol";
import {IRecordRegistry} from "../contracts/interfaces/IRecordRegistry.sol";
import {IStudyRegistry} from "../contracts/interfaces/IStudyRegistry.sol";

/// @notice Issue 14, holes 3 and 10a replayed: signed consents ordered per relationship and
/// cancellable; re-credentialing revives no grant.
contract ConsentSignaturesTest is Base {
    StudyRegistry internal studies;

    uint64 internal constant STUDY_BUDGET = 1_000_000;

    function setUp() public override {
        super.setUp();
        studies = new StudyRegistry(governor, participants);
    }

    // ---------------------------------------------------------------- helpers

    /// @dev A grant of LABS for a year to `grantee`, signed by the patient at `issuedAt` in the
    /// relationship's current epoch; returns the signature.
    function _signGrant(address grantee, uint40 issuedAt) internal view returns (bytes memory) {
        return sign(
            patientKey,
            grantStructHash(
                patient,
                grantee,
                LABS,
                TREATMENT,
                0,
                now40() + YEAR,
                patient,
                epochOf(patient, grantee),
                issuedAt,
                block.timestamp + 1 days
            )
        );
    }

    /// @dev Relays what {_signGrant} signed (with the epoch and expiry given).
    function _relayGrant(
        address grantee,
        uint24 epoch,
        uint40 issuedAt,
        uint40 expiresAt,
        uint256 deadline,
        bytes memory sig
    ) internal {
        vm.prank(stranger);
        consent.grantBySig(
            patient, grantee, LABS, TREATMENT, 0, expiresAt, patient, epoch, issuedAt, deadline, sig
        );
    }

    function _signRevoke(address grantee, uint40 issuedAt) internal view returns (bytes memory) {
        return sign(
            patientKey,
            revokeStructHash(
                patient,
                grantee,
                patient,
                epochOf(patient, grantee),
                issuedAt,
                block.timestamp + 1 days
            )
        );
    }

    function _relayRevoke(
        address grantee,
        uint24 epoch,
        uint40 issuedAt,
        uint256 deadline,
        bytes memory sig
    ) internal {
        vm.prank(stranger);
        consent.revokeBySig(patient, grantee, patient, epoch, issuedAt, deadline, sig);
    }

    function _stale(uint24 epoch, uint40 issuedAt, uint24 current, uint40 signedAt) internal {
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentSignatureStale.selector, epoch, issuedAt, current, signedAt
            )
        );
    }

    // ------------------------------------------------- hole 3: the issue's attacks

    /// @dev The issue's attack: a patient signs a grant (--sign-only), then grants directly and
    /// revokes directly; relaying the old signature gave the access back.
    function test_attack_signedGrantRelayedAfterDirectGrantAndRevoke_isStale() public {
        uint40 t = now40();
        uint40 exp = t + YEAR;
        uint256 deadline = block.timestamp + 1 days;
        bytes memory sig = _signGrant(hospitalA, t);
        grantAs(patient, hospitalA, LABS);
        vm.warp(block.timestamp + 1 hours);
        vm.prank(patient);
        consent.revoke(patient, hospitalA);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));

        _stale(0, t, 2, 0);
        _relayGrant(hospitalA, 0, t, exp, deadline, sig);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        assertEq(consent.grantedCategories(hospitalA, patient), 0);
    }

    // The same for a study: test/StudyRegistry.t.sol, test_optInBySig_revertsOnReplay and
    // test_cancelBySig_voidsOutstandingOptIn (issue 16 removed the direct opt-in).

    /// @dev A withheld signed grant (to A) does not block a later signed revocation of another
    /// grantee (B): nonces were one sequence per signer, so it did.
    function test_attack_withheldSignatureDoesNotBlockAnotherGranteesRevocation() public {
        uint40 t = now40();
        // Granted to B by signature, and relayed.
        bytes memory grantB = _signGrant(hospitalB, t);
        _relayGrant(hospitalB, 0, t, now40() + YEAR, block.timestamp + 1 days, grantB);
        // A grant to A, signed next and withheld by its relayer.
        _signGrant(hospitalA, t + 1);
        // The patient revokes B by signature: it applies.
        vm.warp(block.timestamp + 10);
        bytes memory revokeB = _signRevoke(hospitalB, t + 10);
        _relayRevoke(hospitalB, 0, t + 10, block.timestamp + 1 days, revokeB);
        assertFalse(consent.canRead(hospitalB, patient, LABS_CAT));
    }

    /// @dev A withheld signed grant does not block a later signed revocation of the same
    /// grantee, and relayed after it, it is stale: the revocation wins whatever the order.
    function test_attack_withheldGrantLosesToLaterSignedRevocationOfSameGrantee() public {
        uint40 t = now40();
        uint40 exp = t + YEAR;
        uint256 deadline = block.timestamp + 1 days;
        bytes memory grant = _signGrant(hospitalA, t);
        vm.warp(block.timestamp + 60);
        bytes memory revocation = _signRevoke(hospitalA, t + 60);
        // The relayer sends the revocation first (there is no grant yet: it applies all the
        // same and moves the epoch) ...
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.Revoked(patient, hospitalA, patient, 1, 0);
        _relayRevoke(hospitalA, 0, t + 60, block.timestamp + 1 days, revocation);
        // ... then the older grant: stale.
        _stale(0, t, 1, 0);
        _relayGrant(hospitalA, 0, t, exp, deadline, grant);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
    }

    /// @dev In the order signed, both apply: the grant, then the revocation.
    function test_grantBySig_thenLaterRevokeBySig_bothApply() public {
        uint40 t = now40();
        bytes memory grant = _signGrant(hospitalA, t);
        bytes memory revocation = _signRevoke(hospitalA, t + 1);
        _relayGrant(hospitalA, 0, t, now40() + YEAR, block.timestamp + 1 days, grant);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
        _relayRevoke(hospitalA, 0, t + 1, block.timestamp + 1 days, revocation);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        // And the grant cannot be replayed afterwards.
        _stale(0, t, 1, 0);
        _relayGrant(hospitalA, 0, t, now40() + YEAR, block.timestamp + 1 days, grant);
    }

    /// @dev Two messages signed in the same second: the second is stale (the CLI signs each
    /// strictly after the last one applied).
    function test_grantBySig_sameIssuedAtTwice_isStale() public {
        uint40 t = now40();
        bytes memory grant = _signGrant(hospitalA, t);
        _relayGrant(hospitalA, 0, t, now40() + YEAR, block.timestamp + 1 days, grant);
        bytes memory revocation = _signRevoke(hospitalA, t);
        _stale(0, t, 0, t);
        _relayRevoke(hospitalA, 0, t, block.timestamp + 1 days, revocation);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
    }

    /// @dev A relationship's epoch is its own: a direct change of one voids nothing of another.
    function test_directChange_voidsOnlyItsOwnRelationship() public {
        uint40 t = now40();
        bytes memory grantB = _signGrant(hospitalB, t);
        grantAs(patient, hospitalA, LABS);
        vm.prank(patient);
        consent.revoke(patient, hospitalA);
        _relayGrant(hospitalB, 0, t, now40() + YEAR, block.timestamp + 1 days, grantB);
        assertTrue(consent.canRead(hospitalB, patient, LABS_CAT));
    }

    /// @dev A revocation keeps the slot's epoch (it is not deleted): old signatures stay void.
    function test_revoke_keepsEpoch() public {
        grantAs(patient, hospitalA, LABS);
        vm.prank(patient);
        consent.revoke(patient, hospitalA);
        IConsentRegistry.Grant memory g = consent.grantOf(patient, hospitalA);
        assertEq(g.epoch, 2);
        assertEq(g.categories, 0);
        assertEq(g.grantedAt, 0);
    }

    // ------------------------------------------------------------ cancellation

    function test_cancelSignatures_voidsOutstandingSignature() public {
        uint40 t = now40();
        bytes memory sig = _signGrant(hospitalA, t);
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.ConsentSignaturesCancelled(patient, hospitalA, patient, 1, 0);
        vm.prank(patient);
        consent.cancelSignatures(patient, hospitalA);
        _stale(0, t, 1, 0);
        _relayGrant(hospitalA, 0, t, now40() + YEAR, block.timestamp + 1 days, sig);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
    }

    function test_cancelSignatures_leavesTheGrant() public {
        grantAs(patient, hospitalA, LABS);
        vm.prank(patient);
        consent.cancelSignatures(patient, hospitalA);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
        assertEq(epochOf(patient, hospitalA), 2);
    }

    function test_cancelSignatures_byGuardianInScope() public {
        grantAs(patient, hospitalA, LABS);
        vm.prank(patient);
        consent.setGuardian(guardian, LABS, 0, now40() + YEAR);
        vm.prank(guardian);
        consent.cancelSignatures(patient, hospitalA);
        assertEq(epochOf(patient, hospitalA), 2);
    }

    function test_cancelSignatures_revertsForGuardianOutOfScope() public {
        grantAs(patient, hospitalA, LABS | NOTES);
        vm.prank(patient);
        consent.setGuardian(guardian, LABS, 0, now40() + YEAR);
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentGuardianOutOfScope.selector, patient, guardian
            )
        );
        vm.prank(guardian);
        consent.cancelSignatures(patient, hospitalA);
    }

    function test_cancelSignatures_revertsForStranger() public {
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentUnauthorized.selector, patient, stranger)
        );
        vm.prank(stranger);
        consent.cancelSignatures(patient, hospitalA);
    }

    function test_cancelSignatures_revertsOnZeroGrantee() public {
        vm.expectRevert(IConsentRegistry.ConsentZeroAddress.selector);
        vm.prank(patient);
        consent.cancelSignatures(patient, address(0));
    }

    function test_cancelBySig_voidsThroughARelayerAndCannotBeReplayed() public {
        uint40 t = now40();
        uint256 deadline = block.timestamp + 1 days;
        bytes memory grant = _signGrant(hospitalA, t);
        bytes memory cancel = sign(
            patientKey,
            keccak256(
                abi.encode(
                    consent.CANCEL_TYPEHASH(), patient, hospitalA, patient, 0, t + 1, deadline
                )
            )
        );
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.ConsentSignaturesCancelled(patient, hospitalA, patient, 1, 0);
        vm.prank(stranger);
        consent.cancelBySig(patient, hospitalA, patient, 0, t + 1, deadline, cancel);

        _stale(0, t, 1, 0);
        _relayGrant(hospitalA, 0, t, now40() + YEAR, deadline, grant);
        _stale(0, t + 1, 1, 0);
        vm.prank(stranger);
        consent.cancelBySig(patient, hospitalA, patient, 0, t + 1, deadline, cancel);
    }

    function test_cancelBySig_revertsOnWrongSigner() public {
        uint256 deadline = block.timestamp + 1 days;
        bytes memory cancel = sign(
            guardianKey,
            keccak256(
                abi.encode(
                    consent.CANCEL_TYPEHASH(), patient, hospitalA, patient, 0, now40(), deadline
                )
            )
        );
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidSignature.selector, patient)
        );
        consent.cancelBySig(patient, hospitalA, patient, 0, now40(), deadline, cancel);
    }

    // ---------------------------------------------- hole 10a: re-credentialing

    function _reissue(address account) internal {
        vm.prank(governor);
        participants.issueCredential(
            account, IParticipantRegistry.Role.Provider, keccak256("licence again"), now40() + YEAR
        );
    }

    /// @dev The issue's attack: credentialing a revoked provider again revived its old grants.
    function test_attack_reissuedCredentialDoesNotReviveGrant() public {
        grantAs(patient, hospitalA, LABS);
        vm.prank(governor);
        participants.revokeCredential(hospitalA);
        vm.warp(block.timestamp + 1 days);
        _reissue(hospitalA);

        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        assertEq(consent.readableCategories(hospitalA, patient), 0);
        assertEq(consent.grantedCategories(hospitalA, patient), 0);
        // No anchoring either (the record registry asks grantedCategories).
        vm.expectRevert(
            abi.encodeWithSelector(
                IRecordRegistry.RecordNoRelationship.selector, hospitalA, patient
            )
        );
        vm.prank(hospitalA);
        records.anchor(pointer(hospitalA, patient, LABS_CAT, keccak256("x")));
        // A grant given after the new credential counts.
        vm.warp(block.timestamp + 1);
        grantAs(patient, hospitalA, LABS);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
    }

    /// @dev The same after a lapse: a credential issued once the old one expired starts afresh.
    function test_attack_credentialIssuedAfterLapseDoesNotReviveGrant() public {
        grantAs(patient, hospitalA, LABS);
        vm.warp(participants.credentialOf(hospitalA).expiresAt + 1);
        _reissue(hospitalA);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        assertEq(consent.grantedCategories(hospitalA, patient), 0);
    }

    /// @dev A grant made while the credential was revoked does not count after re-issue either.
    function test_grantWhileRevoked_doesNotCountAfterReissue() public {
        vm.prank(governor);
        participants.revokeCredential(hospitalA);
        grantAs(patient, hospitalA, LABS);
        vm.warp(block.timestamp + 1);
        _reissue(hospitalA);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
    }

    /// @dev Grant, revocation and re-issue in one second (one block): the grant stays dead, as
    /// does one given in that second after the re-issue; a grant of a later second counts.
    function test_attack_reissuedInTheSameSecondDoesNotReviveGrant() public {
        grantAs(patient, hospitalA, LABS);
        vm.prank(governor);
        participants.revokeCredential(hospitalA);
        _reissue(hospitalA);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        assertEq(consent.grantedCategories(hospitalA, patient), 0);
        grantAs(patient, hospitalA, LABS);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        vm.warp(block.timestamp + 1);
        grantAs(patient, hospitalA, LABS);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
    }

    /// @dev A renewal of a live credential keeps the grants, and anchoring.
    function test_renewalOfLiveCredential_keepsGrants() public {
        grantAs(patient, hospitalA, LABS);
        vm.warp(block.timestamp + 30 days);
        _reissue(hospitalA);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
        assertEq(consent.grantedCategories(hospitalA, patient), LABS);
        vm.prank(hospitalA);
        records.anchor(pointer(hospitalA, patient, LABS_CAT, keccak256("x")));
    }

    // ------------------------------------- hole 3 follow-up: the review's attacks

    /// @dev A signed cancellation of (patient, hospitalA) in epoch 0 at `issuedAt`.
    function _signCancel(uint40 issuedAt, uint256 deadline) internal view returns (bytes memory) {
        return sign(
            patientKey,
            keccak256(
                abi.encode(
                    consent.CANCEL_TYPEHASH(),
                    patient,
                    hospitalA,
                    patient,
                    epochOf(patient, hospitalA),
                    issuedAt,
                    deadline
                )
            )
        );
    }

    /// @dev Writes `epoch` into the grant slot of (patient, `grantee`): `_grants` is storage
    /// slot 3 and the epoch sits at bit 152 of the packed Grant.
    function _storeEpoch(address grantee, uint24 epoch) internal {
        bytes32 slot = keccak256(abi.encode(grantee, keccak256(abi.encode(patient, uint256(3)))));
        uint256 w = uint256(vm.load(address(consent), slot));
        w = (w & ~(uint256(type(uint24).max) << 152)) | (uint256(epoch) << 152);
        vm.store(address(consent), slot, bytes32(w));
        assertEq(epochOf(patient, grantee), epoch, "layout");
    }

    /// @dev A1: a relayer holding a signed grant front-runs the patient's signed cancellation
    /// with it. The cancellation revokes that grant: it was signed before the cancellation.
    function test_attack_A1_grantRelayedAheadOfCancelBySig_isRevoked() public {
        uint40 t = now40();
        uint256 deadline = block.timestamp + 1 days;
        bytes memory grant = _signGrant(hospitalA, t);
        bytes memory cancel = _signCancel(t + 1, deadline);
        _relayGrant(hospitalA, 0, t, t + YEAR, deadline, grant);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.Revoked(patient, hospitalA, patient, 1, 0);
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.ConsentSignaturesCancelled(patient, hospitalA, patient, 1, 0);
        vm.prank(stranger);
        consent.cancelBySig(patient, hospitalA, patient, 0, t + 1, deadline, cancel);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT), "cancelled grant is live");
        IConsentRegistry.Grant memory g = consent.grantOf(patient, hospitalA);
        assertEq(g.categories, 0);
        assertEq(g.grantedAt, 0);
        assertEq(g.epoch, 1);
        assertEq(g.signedAt, 0);
    }

    /// @dev A1 with a direct cancellation: the same front-run, the same outcome.
    function test_attack_A1_grantRelayedAheadOfDirectCancel_isRevoked() public {
        uint40 t = now40();
        bytes memory grant = _signGrant(hospitalA, t);
        _relayGrant(hospitalA, 0, t, t + YEAR, block.timestamp + 1 days, grant);
        vm.prank(patient);
        consent.cancelSignatures(patient, hospitalA);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT), "cancelled grant is live");
        assertEq(epochOf(patient, hospitalA), 1);
    }

    /// @dev A1's defence touches only signed grants: a cancellation after a direct grant
    /// (which closed the epoch of every earlier signature) leaves it.
    function test_cancelSignatures_afterSignedThenDirectGrant_leavesTheDirectGrant() public {
        uint40 t = now40();
        _relayGrant(hospitalA, 0, t, t + YEAR, block.timestamp + 1 days, _signGrant(hospitalA, t));
        grantAs(patient, hospitalA, LABS);
        vm.prank(patient);
        consent.cancelSignatures(patient, hospitalA);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
        assertEq(epochOf(patient, hospitalA), 2);
    }

    /// @dev A2: a grant signed on a clock an hour fast is refused outright.
    function test_attack_A2_grantFromFastClock_isRefused() public {
        uint40 t = now40();
        uint40 issuedAt = t + 1 hours;
        bytes memory grant = _signGrant(hospitalA, issuedAt);
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentSignatureFromFuture.selector,
                issuedAt,
                block.timestamp + consent.MAX_SIGNATURE_SKEW()
            )
        );
        _relayGrant(hospitalA, 0, issuedAt, t + YEAR, block.timestamp + 1 days, grant);
    }

    /// @dev The bound is inclusive: a clock exactly the skew ahead still signs.
    function test_grantBySig_acceptsIssuedAtExactlyTheSkewAhead() public {
        uint40 issuedAt = now40() + consent.MAX_SIGNATURE_SKEW();
        bytes memory grant = _signGrant(hospitalA, issuedAt);
        _relayGrant(hospitalA, 0, issuedAt, now40() + YEAR, block.timestamp + 1 days, grant);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
    }

    /// @dev A2 within the skew: the patient's phone runs four minutes fast and signs a grant;
    /// a minute later the guardian signs a revocation of the grant in place, which is applied
    /// first. The earlier-signed grant, with its later `issuedAt`, no longer follows it.
    function test_attack_A2_grantOnFastClockLosesToLaterSignedRevocation() public {
        grantAs(patient, hospitalA, LABS);
        vm.prank(patient);
        consent.setGuardian(guardian, LABS, 0, now40() + YEAR);
        uint40 t = now40();
        uint256 deadline = block.timestamp + 1 days;
        bytes memory grant = _signGrant(hospitalA, t + 4 minutes);
        vm.warp(t + 60);
        bytes memory revocation =
            sign(guardianKey, revokeStructHash(patient, hospitalA, guardian, 1, t + 60, deadline));
        vm.prank(stranger);
        consent.revokeBySig(patient, hospitalA, guardian, 1, t + 60, deadline, revocation);
        _stale(1, t + 4 minutes, 2, 0);
        _relayGrant(hospitalA, 1, t + 4 minutes, t + YEAR, deadline, grant);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
    }

    /// @dev A3: a guardian scoped to NOTES signs a revocation of an empty (patient, hospitalA)
    /// with the largest `issuedAt`, to make every later signed message of it stale. Refused
    /// for its clock, and for the missing grant at any `issuedAt`; the patient's grant applies.
    function test_attack_A3_guardianMaxIssuedAtOnEmptyRelationship_isRefused() public {
        vm.prank(patient);
        consent.setGuardian(guardian, NOTES, 0, now40() + YEAR);
        uint40 max = type(uint40).max;
        uint256 deadline = block.timestamp + 1 days;
        bytes memory r =
            sign(guardianKey, revokeStructHash(patient, hospitalA, guardian, 0, max, deadline));
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentSignatureFromFuture.selector,
                max,
                block.timestamp + consent.MAX_SIGNATURE_SKEW()
            )
        );
        vm.prank(stranger);
        consent.revokeBySig(patient, hospitalA, guardian, 0, max, deadline, r);

        uint40 t = now40();
        r = sign(guardianKey, revokeStructHash(patient, hospitalA, guardian, 0, t, deadline));
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentGrantNotFound.selector, patient, hospitalA
            )
        );
        vm.prank(stranger);
        consent.revokeBySig(patient, hospitalA, guardian, 0, t, deadline, r);

        _relayGrant(hospitalA, 0, t, t + YEAR, deadline, _signGrant(hospitalA, t));
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
    }

    /// @dev A3 by cancellation: a guardian cannot cancel (directly or signed) where no grant of
    /// its scope exists, so it cannot void the patient's outstanding signatures there.
    function test_attack_A3_guardianCancelOnEmptyRelationship_isRefused() public {
        vm.prank(patient);
        consent.setGuardian(guardian, NOTES, 0, now40() + YEAR);
        uint40 t = now40();
        uint256 deadline = block.timestamp + 1 days;
        bytes memory grant = _signGrant(hospitalA, t);
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentGrantNotFound.selector, patient, hospitalA
            )
        );
        vm.prank(guardian);
        consent.cancelSignatures(patient, hospitalA);
        bytes memory cancel = sign(
            guardianKey,
            keccak256(
                abi.encode(consent.CANCEL_TYPEHASH(), patient, hospitalA, guardian, 0, t, deadline)
            )
        );
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentGrantNotFound.selector, patient, hospitalA
            )
        );
        vm.prank(stranger);
        consent.cancelBySig(patient, hospitalA, guardian, 0, t, deadline, cancel);
        _relayGrant(hospitalA, 0, t, t + YEAR, deadline, grant);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
    }

    /// @dev A4: at the last epoch a direct revocation, grant and cancellation still work; the
    /// epoch stays and signatures are void for good.
    function test_attack_A4_saturatedEpoch_directCallsWork_signaturesVoid() public {
        grantAs(patient, hospitalA, LABS);
        uint24 max = type(uint24).max;
        _storeEpoch(hospitalA, max);
        vm.prank(patient);
        consent.revoke(patient, hospitalA);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        IConsentRegistry.Grant memory g = consent.grantOf(patient, hospitalA);
        assertEq(g.epoch, max);
        assertEq(g.signedAt, type(uint40).max);

        grantAs(patient, hospitalA, LABS);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.ConsentSignaturesCancelled(
            patient, hospitalA, patient, max, type(uint40).max
        );
        vm.prank(patient);
        consent.cancelSignatures(patient, hospitalA);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT), "direct grant stays");
        assertEq(epochOf(patient, hospitalA), max);

        uint40 t = now40();
        bytes memory grant = _signGrant(hospitalA, t);
        _stale(max, t, max, type(uint40).max);
        _relayGrant(hospitalA, max, t, t + YEAR, block.timestamp + 1 days, grant);
    }

    /// @dev A4 from a signed grant: the patient's signed revocation at the last epoch applies and
    /// voids signatures for good; direct calls go on.
    function test_attack_A4_saturatedEpoch_signedRevocationVoidsForGood() public {
        uint24 max = type(uint24).max;
        _storeEpoch(hospitalA, max);
        uint40 t = now40();
        _relayGrant(hospitalA, max, t, t + YEAR, block.timestamp + 1 days, _signGrant(hospitalA, t));
        _relayRevoke(hospitalA, max, t + 1, block.timestamp + 1 days, _signRevoke(hospitalA, t + 1));
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        assertEq(consent.grantOf(patient, hospitalA).signedAt, type(uint40).max);
        grantAs(patient, hospitalA, LABS);
        vm.prank(patient);
        consent.revoke(patient, hospitalA);
        assertEq(epochOf(patient, hospitalA), max);
    }
}
