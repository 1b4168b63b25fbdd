// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Base} from "./Base.t.sol";
import {IConsentRegistry} from "../contracts/interfaces/IConsentRegistry.sol";
import {IRecordRegistry} from "../contracts/interfaces/IRecordRegistry.sol";
import {IParticipantRegistry} from "../contracts/interfaces/IParticipantRegistry.sol";

/// @notice Break-glass bounded by governance policy (issue 14, hole 1) and its salted reason
/// commitments (hole 9). Each `test_attack_*` replays an attack that worked before the bounds.
contract BreakGlassTest is Base {
    uint64 internal constant ALL = type(uint64).max;
    uint8 internal constant MENTAL_CAT = 10;
    uint8 internal constant SEXUAL_CAT = 11;
    uint8 internal constant SUBSTANCE_CAT = 12;
    uint8 internal constant GENETICS_CAT = 13;
    uint64 internal constant SENSITIVE = (1 << 10) | (1 << 11) | (1 << 12) | (1 << 13);
    bytes32 internal constant SALT = bytes32(uint256(0x5a17));
    string internal constant REASON_TEXT = "unconscious in the emergency department";

    address internal patient2 = makeAddr("patient2");
    address internal patient3 = makeAddr("patient3");
    address internal patient4 = makeAddr("patient4");

    /// @dev The salted commitment the CLI computes (crates/protocol `commitment`).
    function commit(bytes32 salt, string memory text) internal pure returns (bytes32) {
        return keccak256(abi.encode(salt, text));
    }

    function open(address provider, address p, uint40 duration) internal returns (uint64) {
        vm.prank(provider);
        return consent.openEmergencyAccess(p, commit(SALT, REASON_TEXT), duration);
    }

    function closeAs(address by, address p, address provider) internal {
        vm.prank(by);
        consent.closeEmergencyAccess(p, provider);
    }

    function policy(
        uint8 maxOpenings,
        uint40 period,
        uint40 coolingOff,
        uint40 justifyWithin,
        uint16 maxUnjustified
    ) internal pure returns (IConsentRegistry.EmergencyPolicy memory) {
        return policy(maxOpenings, period, coolingOff, justifyWithin, maxUnjustified, 5);
    }

    function policy(
        uint8 maxOpenings,
        uint40 period,
        uint40 coolingOff,
        uint40 justifyWithin,
        uint16 maxUnjustified,
        uint16 maxPending
    ) internal pure returns (IConsentRegistry.EmergencyPolicy memory) {
        return IConsentRegistry.EmergencyPolicy({
            maxOpenings: maxOpenings,
            period: period,
            coolingOff: coolingOff,
            justifyWithin: justifyWithin,
            maxUnjustified: maxUnjustified,
            maxPending: maxPending
        });
    }

    function setPolicy(IConsentRegistry.EmergencyPolicy memory p) internal {
        vm.prank(governor);
        consent.setEmergencyPolicy(p);
    }

    // ------------------------------------------------------------- defaults

    function test_constructor_setsPrivacyOfficersDefaults() public view {
        IConsentRegistry.EmergencyPolicy memory p = consent.emergencyPolicy();
        assertEq(p.maxOpenings, 3);
        assertEq(p.period, 30 days);
        assertEq(p.coolingOff, 7 days);
        assertEq(p.justifyWithin, 72 hours);
        assertEq(p.maxUnjustified, 3);
        assertEq(p.maxPending, 5);
        assertEq(consent.EMERGENCY_SENSITIVE(), SENSITIVE);
        assertEq(consent.MAX_EMERGENCY_OPENINGS(), 5);
        assertEq(consent.MAX_EMERGENCY_PENDING(), 1000);
    }

    // ------------------------------------------------- cooling-off (attack)

    /// The patient closes break-glass; before, the provider reopened at once.
    function test_attack_reopenAtOnceAfterPatientCloses_reverts() public {
        open(hospitalA, patient, 4 hours);
        closeAs(patient, patient, hospitalA);
        uint40 until = now40() + 7 days;
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentEmergencyCoolingOff.selector, patient, hospitalA, until
            )
        );
        open(hospitalA, patient, 4 hours);
        assertEq(consent.readableCategories(hospitalA, patient), 0);
        assertEq(consent.emergencyBoundsOf(patient, hospitalA).coolingOffUntil, until);

        // Another provider's emergency stays possible.
        open(hospitalB, patient, 4 hours);
        assertEq(consent.readableCategories(hospitalB, patient), ALL);

        vm.warp(until - 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentEmergencyCoolingOff.selector, patient, hospitalA, until
            )
        );
        open(hospitalA, patient, 4 hours);
        vm.warp(until);
        open(hospitalA, patient, 4 hours);
        assertEq(consent.readableCategories(hospitalA, patient), ALL);
    }

    function test_close_byProviderStartsNoCoolingOff() public {
        open(hospitalA, patient, 4 hours);
        closeAs(hospitalA, patient, hospitalA);
        assertEq(consent.emergencyBoundsOf(patient, hospitalA).coolingOffUntil, 0);
        open(hospitalA, patient, 4 hours);
        assertEq(consent.readableCategories(hospitalA, patient), ALL);
    }

    // --------------------------------------------------- frequency (attack)

    /// Before, a provider reopened 30 times in 30 days; the fourth in the period now reverts.
    function test_attack_fourthOpeningInPeriod_reverts() public {
        uint40 first = now40();
        for (uint256 i; i < 3; ++i) {
            open(hospitalA, patient, 1 hours);
            vm.warp(block.timestamp + 1 days);
        }
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentEmergencyTooFrequent.selector,
                patient,
                hospitalA,
                first + 30 days
            )
        );
        open(hospitalA, patient, 1 hours);
        assertEq(consent.readableCategories(hospitalA, patient), 0);

        // Other patients, and other providers for this patient, are bounded on their own.
        open(hospitalA, patient2, 1 hours);
        open(hospitalB, patient, 1 hours);

        // Rolling: the first opening leaves the period, one more is allowed, then none.
        vm.warp(first + 30 days);
        open(hospitalA, patient, 1 hours);
        vm.warp(block.timestamp + 1 hours);
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentEmergencyTooFrequent.selector,
                patient,
                hospitalA,
                first + 1 days + 30 days
            )
        );
        open(hospitalA, patient, 1 hours);
    }

    function test_open_frequencyAtHardMaximum() public {
        setPolicy(policy(5, 30 days, 7 days, 72 hours, 3));
        for (uint256 i; i < 5; ++i) {
            open(hospitalA, patient, 1 hours);
            vm.warp(block.timestamp + 1 hours);
        }
        vm.expectPartialRevert(IConsentRegistry.ConsentEmergencyTooFrequent.selector);
        open(hospitalA, patient, 1 hours);
    }

    function test_open_periodZeroLeavesFrequencyUnbounded() public {
        // Room for eight pending openings: here only the per-patient frequency is at issue.
        setPolicy(policy(1, 0, 0, 72 hours, 3, 8));
        for (uint256 i; i < 8; ++i) {
            open(hospitalA, patient, 1 hours);
            closeAs(patient, patient, hospitalA);
        }
        assertEq(consent.emergencyOpeningCount(), 8);
    }

    // ------------------------------------------------ justification (attack)

    /// Openings nobody justified: anyone records them overdue; at the limit the provider opens
    /// break-glass for no one until governance clears it.
    function test_attack_unjustifiedAtLimitBlocksNewOpenings() public {
        uint64 id1 = open(hospitalA, patient, 1 hours);
        uint64 id2 = open(hospitalA, patient2, 1 hours);
        uint64 id3 = open(hospitalA, patient3, 1 hours);
        assertEq(id1, 1);
        assertEq(id3, 3);
        assertFalse(consent.isEmergencyOverdue(id1));

        vm.warp(block.timestamp + 72 hours);
        assertTrue(consent.isEmergencyOverdue(id1));
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.EmergencyAccessOverdue(id1, hospitalA, 1);
        vm.prank(stranger);
        consent.recordEmergencyOverdue(id1);
        vm.prank(patient);
        consent.recordEmergencyOverdue(id2);
        assertEq(consent.emergencyUnjustified(hospitalA), 2);
        // Two of three: still allowed.
        open(hospitalA, patient4, 1 hours);

        // The third, reviewed unjustified by governance, reaches the limit.
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.EmergencyAccessReviewed(id3, hospitalA, false, 3);
        vm.prank(governor);
        consent.reviewEmergencyAccess(id3, false);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentEmergencyBlocked.selector, hospitalA, 3)
        );
        open(hospitalA, makeAddr("patient5"), 1 hours);
        // Other providers are not blocked.
        open(hospitalB, makeAddr("patient5"), 1 hours);

        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.EmergencyUnjustifiedCleared(hospitalA, 3);
        vm.prank(governor);
        consent.clearEmergencyUnjustified(hospitalA);
        open(hospitalA, makeAddr("patient5"), 1 hours);
    }

    function test_attack_justifiedOpeningDoesNotCount() public {
        setPolicy(policy(3, 30 days, 7 days, 72 hours, 1));
        uint64 id = open(hospitalA, patient, 1 hours);
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.EmergencyAccessReviewed(id, hospitalA, true, 0);
        vm.prank(governor);
        consent.reviewEmergencyAccess(id, true);
        vm.warp(block.timestamp + 72 hours);
        assertFalse(consent.isEmergencyOverdue(id));
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentEmergencyAlreadyReviewed.selector,
                id,
                IConsentRegistry.EmergencyReview.Justified
            )
        );
        consent.recordEmergencyOverdue(id);
        assertEq(consent.emergencyUnjustified(hospitalA), 0);
        // With a limit of one, a justified opening leaves the provider free to open.
        open(hospitalA, patient2, 1 hours);
    }

    function test_review_lateJustificationStopsCounting() public {
        uint64 id = open(hospitalA, patient, 1 hours);
        vm.warp(block.timestamp + 72 hours);
        consent.recordEmergencyOverdue(id);
        assertEq(consent.emergencyUnjustified(hospitalA), 1);
        vm.prank(governor);
        consent.reviewEmergencyAccess(id, true);
        assertEq(consent.emergencyUnjustified(hospitalA), 0);
        assertEq(
            uint8(consent.emergencyOpening(id).status),
            uint8(IConsentRegistry.EmergencyReview.Justified)
        );
        assertFalse(consent.isEmergencyOverdue(id));
    }

    function test_review_overdueThenUnjustifiedCountsOnce() public {
        uint64 id = open(hospitalA, patient, 1 hours);
        vm.warp(block.timestamp + 72 hours);
        consent.recordEmergencyOverdue(id);
        vm.prank(governor);
        consent.reviewEmergencyAccess(id, false);
        assertEq(consent.emergencyUnjustified(hospitalA), 1);
    }

    function test_review_revertsTwiceForStrangerAndUnknown() public {
        uint64 id = open(hospitalA, patient, 1 hours);
        bytes32 role = consent.GOVERNANCE_ROLE();
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, hospitalA, role
            )
        );
        vm.prank(hospitalA);
        consent.reviewEmergencyAccess(id, true);

        vm.prank(governor);
        consent.reviewEmergencyAccess(id, false);
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentEmergencyAlreadyReviewed.selector,
                id,
                IConsentRegistry.EmergencyReview.Unjustified
            )
        );
        vm.prank(governor);
        consent.reviewEmergencyAccess(id, true);

        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentEmergencyOpeningNotFound.selector, 9)
        );
        vm.prank(governor);
        consent.reviewEmergencyAccess(9, true);
    }

    function test_recordOverdue_revertsBeforeDeadline() public {
        uint64 id = open(hospitalA, patient, 1 hours);
        uint40 reviewBy = now40() + 72 hours;
        assertEq(consent.emergencyOpening(id).reviewBy, reviewBy);
        vm.warp(reviewBy - 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentEmergencyNotOverdue.selector, id, reviewBy
            )
        );
        consent.recordEmergencyOverdue(id);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentEmergencyOpeningNotFound.selector, 2)
        );
        consent.recordEmergencyOverdue(2);
        vm.warp(reviewBy);
        consent.recordEmergencyOverdue(id);
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentEmergencyAlreadyReviewed.selector,
                id,
                IConsentRegistry.EmergencyReview.Overdue
            )
        );
        consent.recordEmergencyOverdue(id);
        assertEq(consent.emergencyUnjustified(hospitalA), 1);
    }

    function test_clearUnjustified_revertsForNonGovernance() public {
        bytes32 role = consent.GOVERNANCE_ROLE();
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, hospitalA, role
            )
        );
        vm.prank(hospitalA);
        consent.clearEmergencyUnjustified(hospitalA);
    }

    function test_open_storesOpeningAndEmitsDeadline() public {
        uint40 nowTs = now40();
        bytes32 reason = commit(SALT, REASON_TEXT);
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.EmergencyAccessOpened(
            patient, hospitalA, reason, nowTs, nowTs + 1 hours
        );
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.EmergencyJustificationDue(1, patient, hospitalA, nowTs + 72 hours);
        uint64 id = open(hospitalA, patient, 1 hours);
        IConsentRegistry.EmergencyOpening memory o = consent.emergencyOpening(id);
        assertEq(o.patient, patient);
        assertEq(o.provider, hospitalA);
        assertEq(o.openedAt, nowTs);
        assertEq(o.reviewBy, nowTs + 72 hours);
        assertEq(uint8(o.status), uint8(IConsentRegistry.EmergencyReview.Pending));
        assertEq(o.reasonHash, reason);
        assertEq(consent.emergencyOpeningCount(), 1);
    }

    // ------------------------------------------------- patient's rule (attack)

    /// Before, break-glass read every category; the patient's rule now keeps the sensitive ones
    /// out, also through the RecordRegistry's anchoring check.
    function test_attack_patientsRuleHidesSensitiveCategories() public {
        uint64 rule = (uint64(1) << MENTAL_CAT) | (uint64(1) << GENETICS_CAT);
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.EmergencyRuleSet(patient, rule);
        vm.prank(patient);
        consent.setEmergencyRule(rule);
        assertEq(consent.emergencyRuleOf(patient), rule);

        open(hospitalB, patient, 4 hours);
        assertEq(consent.readableCategories(hospitalB, patient), ~rule);
        assertFalse(consent.canRead(hospitalB, patient, MENTAL_CAT));
        assertFalse(consent.canRead(hospitalB, patient, GENETICS_CAT));
        assertTrue(consent.canRead(hospitalB, patient, SEXUAL_CAT));
        assertTrue(consent.canRead(hospitalB, patient, LABS_CAT));

        // The record registry no longer sees a pointer's category (issue 16: it is committed),
        // so it cannot refuse one of an excluded category: break-glass is a relationship, and the
        // pointer is marked as anchored under it. Reads stay refused: canRead above.
        bytes32 hash = sha256("a mental-health note");
        IRecordRegistry.Pointer memory p = pointer(hospitalB, patient, MENTAL_CAT, hash);
        vm.prank(hospitalB);
        records.anchor(p);
        assertTrue(records.anchoredUnderBreakGlass(p.recordId));

        // A grant the patient gave still counts.
        grantAs(patient, hospitalB, uint64(1) << MENTAL_CAT);
        assertTrue(consent.canRead(hospitalB, patient, MENTAL_CAT));
        assertFalse(consent.canRead(hospitalB, patient, GENETICS_CAT));
    }

    function test_rule_appliesToAccessAlreadyOpenAndClears() public {
        open(hospitalA, patient, 4 hours);
        vm.prank(patient);
        consent.setEmergencyRule(SENSITIVE);
        assertEq(consent.readableCategories(hospitalA, patient), ~SENSITIVE);
        assertFalse(consent.canRead(hospitalA, patient, SUBSTANCE_CAT));
        vm.prank(patient);
        consent.setEmergencyRule(0);
        assertEq(consent.readableCategories(hospitalA, patient), ALL);
    }

    function test_rule_revertsOnNonSensitiveCategory() public {
        uint64 bad = SENSITIVE | LABS;
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentEmergencyRuleNotSensitive.selector, bad, SENSITIVE
            )
        );
        vm.prank(patient);
        consent.setEmergencyRule(bad);
        assertEq(consent.emergencyRuleOf(patient), 0);
    }

    function testFuzz_rule_neverHidesMoreThanExcluded(uint64 excluded, uint8 category) public {
        excluded &= SENSITIVE;
        category = uint8(bound(category, 0, 63));
        vm.prank(patient);
        consent.setEmergencyRule(excluded);
        open(hospitalA, patient, 1 hours);
        bool hidden = excluded & (uint64(1) << category) != 0;
        assertEq(consent.canRead(hospitalA, patient, category), !hidden);
    }

    // --------------------------------------------------------------- policy

    function test_setEmergencyPolicy_storesEmitsAndBindsNewOpenings() public {
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.EmergencyPolicySet(1, 7 days, 1 days, 24 hours, 2, 7);
        setPolicy(policy(1, 7 days, 1 days, 24 hours, 2, 7));
        IConsentRegistry.EmergencyPolicy memory p = consent.emergencyPolicy();
        assertEq(p.maxOpenings, 1);
        assertEq(p.period, 7 days);
        assertEq(p.coolingOff, 1 days);
        assertEq(p.justifyWithin, 24 hours);
        assertEq(p.maxUnjustified, 2);
        assertEq(p.maxPending, 7);
        uint64 id = open(hospitalA, patient, 1 hours);
        assertEq(consent.emergencyOpening(id).reviewBy, now40() + 24 hours);
        vm.warp(block.timestamp + 1 hours);
        vm.expectPartialRevert(IConsentRegistry.ConsentEmergencyTooFrequent.selector);
        open(hospitalA, patient, 1 hours);
    }

    function test_setEmergencyPolicy_revertsOutsideHardBounds() public {
        IConsentRegistry.EmergencyPolicy[9] memory bad = [
            policy(0, 30 days, 7 days, 72 hours, 3),
            policy(6, 30 days, 7 days, 72 hours, 3),
            policy(3, 366 days, 7 days, 72 hours, 3),
            policy(3, 30 days, 366 days, 72 hours, 3),
            policy(3, 30 days, 7 days, 1 hours - 1, 3),
            policy(3, 30 days, 7 days, 30 days + 1, 3),
            policy(3, 30 days, 7 days, 72 hours, 0),
            policy(3, 30 days, 7 days, 72 hours, 3, 0),
            policy(3, 30 days, 7 days, 72 hours, 3, 1001)
        ];
        for (uint256 i; i < bad.length; ++i) {
            vm.expectRevert(IConsentRegistry.ConsentInvalidEmergencyPolicy.selector);
            setPolicy(bad[i]);
        }
        assertEq(consent.emergencyPolicy().maxOpenings, 3);
    }

    function test_setEmergencyPolicy_revertsForNonGovernance() public {
        bytes32 role = consent.GOVERNANCE_ROLE();
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, role
            )
        );
        vm.prank(stranger);
        consent.setEmergencyPolicy(policy(5, 0, 0, 72 hours, 3));
    }

    // ------------------------------------------- salted reasons (hole 9)

    /// Before, the reason hash was keccak256 of the text: a dictionary of likely reasons gave
    /// it back. A salted commitment matches no dictionary entry, the same text commits
    /// differently under another salt, and the reason with its salt verifies.
    function test_attack_dictionaryDoesNotRecoverSaltedReason() public {
        uint64 id = open(hospitalA, patient, 1 hours);
        bytes32 onChain = consent.emergencyOpening(id).reasonHash;
        string[4] memory dictionary = [
            "unconscious in the emergency department",
            "unconscious in ED",
            "cardiac arrest",
            "trauma bay"
        ];
        for (uint256 i; i < dictionary.length; ++i) {
            assertTrue(keccak256(bytes(dictionary[i])) != onChain, "unsalted guess");
            assertTrue(commit(bytes32(0), dictionary[i]) != onChain, "zero-salt guess");
        }
        assertTrue(commit(bytes32(uint256(0x5a18)), REASON_TEXT) != onChain, "other salt");
        assertEq(commit(SALT, REASON_TEXT), onChain, "reason and salt verify");
    }

    /// The formula's known answer, also checked by crates/protocol's `commitment` tests.
    function test_commitment_knownAnswer() public pure {
        assertEq(
            commit(bytes32(uint256(1)), "unconscious"),
            0x88faab7e16911d42e24ab0c14a8ecbd582c83292a43c5cf20b7a27ead6c72a07
        );
    }

    // ------------------------------------------------ review findings (issue 14)

    /// A6. Before, the bounds were per provider and patient: one provider opened break-glass
    /// to 300 patients in one block, and nothing counted until 72 hours later. Now the sixth
    /// opening pending review, to any patient, reverts.
    function test_attack_rotatePatients_boundedByPending() public {
        for (uint256 i = 1; i <= 5; ++i) {
            // forge-lint: disable-next-line(unsafe-typecast)
            address p = address(uint160(0x10000 + i));
            open(hospitalB, p, CAP);
            assertTrue(consent.canRead(hospitalB, p, NOTES_CAT));
        }
        assertEq(consent.emergencyPending(hospitalB), 5);
        address sixth = address(uint160(0x10006));
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentEmergencyTooManyPending.selector, hospitalB, uint16(5)
            )
        );
        open(hospitalB, sixth, CAP);
        assertFalse(consent.canRead(hospitalB, sixth, NOTES_CAT));
        // Another provider is not held back by hospitalB's openings.
        open(hospitalA, sixth, CAP);
    }

    /// A review (either way) or an overdue record frees a pending place; closing does not.
    function test_pending_countsDownOnReviewAndOverdueOnly() public {
        uint64 first = open(hospitalB, patient, 1 hours);
        uint64 second = open(hospitalB, patient2, 1 hours);
        uint64 third = open(hospitalB, patient3, 1 hours);
        closeAs(hospitalB, patient3, hospitalB);
        assertEq(consent.emergencyPending(hospitalB), 3);
        vm.prank(governor);
        consent.reviewEmergencyAccess(first, true);
        assertEq(consent.emergencyPending(hospitalB), 2);
        vm.prank(governor);
        consent.reviewEmergencyAccess(second, false);
        assertEq(consent.emergencyPending(hospitalB), 1);
        vm.warp(block.timestamp + 72 hours);
        consent.recordEmergencyOverdue(third);
        assertEq(consent.emergencyPending(hospitalB), 0);
        // A late review of the overdue one does not count down a second time.
        vm.prank(governor);
        consent.reviewEmergencyAccess(third, true);
        assertEq(consent.emergencyPending(hospitalB), 0);
    }

    /// Once governance reviews one of five pending openings, the provider may open again.
    function test_pending_reviewReopensTheWay() public {
        uint64 first;
        for (uint256 i = 1; i <= 5; ++i) {
            // forge-lint: disable-next-line(unsafe-typecast)
            uint64 id = open(hospitalB, address(uint160(0x10000 + i)), CAP);
            if (i == 1) first = id;
        }
        vm.prank(governor);
        consent.reviewEmergencyAccess(first, true);
        open(hospitalB, address(uint160(0x10006)), CAP);
        assertEq(consent.emergencyPending(hospitalB), 5);
    }

    /// A7. Before, the provider closed its opening itself just before the patient's close: the
    /// patient's close reverted and the provider reopened at once. Now the patient refuses
    /// the ended opening and the cooling-off holds.
    function test_attack_providerClosesFirst_patientStillRefuses() public {
        open(hospitalB, patient, CAP);
        closeAs(hospitalB, patient, hospitalB);
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.EmergencyAccessClosed(patient, hospitalB, patient);
        closeAs(patient, patient, hospitalB);
        uint40 until = now40() + 7 days;
        assertEq(consent.emergencyBoundsOf(patient, hospitalB).coolingOffUntil, until);
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentEmergencyCoolingOff.selector, patient, hospitalB, until
            )
        );
        open(hospitalB, patient, CAP);
        assertFalse(consent.canRead(hospitalB, patient, NOTES_CAT));
    }

    /// A7, the other way: a short opening left to expire before the patient could close it.
    function test_attack_shortOpeningExpires_patientStillRefuses() public {
        open(hospitalB, patient, 1);
        vm.warp(block.timestamp + 1);
        closeAs(patient, patient, hospitalB);
        assertEq(consent.emergencyAccessOf(patient, hospitalB).expiresAt, 0);
        vm.expectPartialRevert(IConsentRegistry.ConsentEmergencyCoolingOff.selector);
        open(hospitalB, patient, CAP);
        // Refusing again restarts the cooling-off from now.
        vm.warp(block.timestamp + 1 days);
        closeAs(patient, patient, hospitalB);
        assertEq(consent.emergencyBoundsOf(patient, hospitalB).coolingOffUntil, now40() + 7 days);
    }

    /// The patient refuses an ended opening only while it is recent (the longer of the
    /// period and the review window); no one else closes an ended one.
    function test_refuse_endedOpeningOnlyByPatientWhileRecent() public {
        open(hospitalB, patient, 1 hours);
        vm.warp(block.timestamp + 2 hours);
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentEmergencyNotFound.selector, patient, hospitalB
            )
        );
        closeAs(hospitalB, patient, hospitalB);
        vm.warp(block.timestamp + 30 days);
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentEmergencyNotFound.selector, patient, hospitalB
            )
        );
        closeAs(patient, patient, hospitalB);
        // Never opened: nothing to refuse.
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentEmergencyNotFound.selector, patient2, hospitalB
            )
        );
        closeAs(patient2, patient2, hospitalB);
    }

    /// With the frequency bound switched off (period 0), the review window still lets the
    /// patient refuse.
    function test_refuse_periodZeroUsesReviewWindow() public {
        setPolicy(policy(5, 0, 7 days, 72 hours, 3));
        open(hospitalB, patient, 1 hours);
        closeAs(hospitalB, patient, hospitalB);
        vm.warp(block.timestamp + 72 hours - 1);
        closeAs(patient, patient, hospitalB);
        assertEq(consent.emergencyBoundsOf(patient, hospitalB).coolingOffUntil, now40() + 7 days);
    }

    /// A5. Before, break-glass opened under a credential later revoked counted again once the
    /// credential was re-issued. Now a new credential run voids it.
    function test_attack_breakGlassNotRevivedByRecredential() public {
        open(hospitalB, patient, CAP);
        vm.prank(governor);
        participants.revokeCredential(hospitalB);
        assertFalse(consent.canRead(hospitalB, patient, LABS_CAT));
        vm.warp(block.timestamp + 1 hours);
        vm.prank(governor);
        participants.issueCredential(
            hospitalB, IParticipantRegistry.Role.Provider, keccak256("again"), now40() + YEAR
        );
        assertFalse(consent.canRead(hospitalB, patient, LABS_CAT), "old run's break-glass");
        assertEq(consent.readableCategories(hospitalB, patient), 0);
    }

    /// A renewal of a live credential keeps its run: break-glass opened before it counts.
    function test_breakGlass_survivesRenewalOfLiveCredential() public {
        open(hospitalB, patient, CAP);
        vm.warp(block.timestamp + 1 hours);
        vm.prank(governor);
        participants.issueCredential(
            hospitalB, IParticipantRegistry.Role.Provider, keccak256("renewed"), now40() + YEAR
        );
        assertTrue(consent.canRead(hospitalB, patient, LABS_CAT));
    }

    /// A8. Before, after governance cleared a provider's count, a late justified review of an
    /// opening recorded overdue before the clear took one off the count of a later overdue
    /// opening. Now only an opening recorded since the last clear comes off.
    function test_attack_clearThenLateJustifyKeepsLaterOverdueCounted() public {
        uint64 a = open(hospitalB, patient, 1 hours);
        vm.warp(block.timestamp + 73 hours);
        consent.recordEmergencyOverdue(a);
        vm.prank(governor);
        consent.clearEmergencyUnjustified(hospitalB);
        uint64 b = open(hospitalB, patient2, 1 hours);
        vm.warp(block.timestamp + 73 hours);
        consent.recordEmergencyOverdue(b);
        assertEq(consent.emergencyUnjustified(hospitalB), 1);
        vm.prank(governor);
        consent.reviewEmergencyAccess(a, true);
        assertEq(consent.emergencyUnjustified(hospitalB), 1, "b is overdue and counts");
        // b itself, justified late, still comes off.
        vm.prank(governor);
        consent.reviewEmergencyAccess(b, true);
        assertEq(consent.emergencyUnjustified(hospitalB), 0);
    }
}
