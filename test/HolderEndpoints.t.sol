// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Base} from "./Base.t.sol";
import {IRecordRegistry} from "../contracts/interfaces/IRecordRegistry.sol";

/// @notice Issue 14, hole 6 and hole 10's service key: holders register their gatekeeper's
/// endpoint and service key; record ids are bound to their holder; pointers anchored under
/// break-glass are marked; only the holder or its service key anchors the holder's log.
contract HolderEndpointsTest is Base {
    address internal serviceA = makeAddr("serviceA");
    address internal serviceB = makeAddr("serviceB");

    string internal constant ENDPOINT_A = "https://gatekeeper.hospital-a.example";
    string internal constant ENDPOINT_B = "https://gatekeeper.hospital-b.example";
    string internal constant ATTACKER_URL = "http://127.0.0.1:48999/steal";
    uint8 internal constant SEXUAL_HEALTH = 11;

    bytes32 internal immutable CONTENT = sha256("hospital A's lab result");

    /// @dev The id hospital `holder` gives a record of `p` with this category and content.
    function idOf(address holder, address p, uint8 category, bytes32 hash)
        internal
        pure
        returns (bytes32)
    {
        return pointer(holder, p, category, hash).recordId;
    }

    function registerAs(address holder, string memory endpoint, address key) internal {
        vm.prank(holder);
        records.registerHolder(endpoint, key);
    }

    // ------------------------------------------------------------ registration

    function test_registerHolder_storesAndEmits() public {
        vm.expectEmit(true, true, false, true, address(records));
        emit IRecordRegistry.HolderRegistered(hospitalA, ENDPOINT_A, serviceA);
        registerAs(hospitalA, ENDPOINT_A, serviceA);

        IRecordRegistry.Gatekeeper memory g = records.gatekeeperOf(hospitalA);
        assertEq(g.endpoint, ENDPOINT_A);
        assertEq(g.serviceKey, serviceA);
        IRecordRegistry.Gatekeeper memory none = records.gatekeeperOf(hospitalB);
        assertEq(bytes(none.endpoint).length, 0, "per holder");
        assertEq(none.serviceKey, address(0));
    }

    function test_registerHolder_replacesTheEarlierRegistration() public {
        registerAs(hospitalA, ENDPOINT_A, serviceA);
        registerAs(hospitalA, ENDPOINT_B, serviceB);
        IRecordRegistry.Gatekeeper memory g = records.gatekeeperOf(hospitalA);
        assertEq(g.endpoint, ENDPOINT_B);
        assertEq(g.serviceKey, serviceB);
    }

    function test_registerHolder_revertsForNonProvider() public {
        address[3] memory who = [stranger, researcher, patient];
        for (uint256 i; i < who.length; ++i) {
            vm.expectRevert(
                abi.encodeWithSelector(IRecordRegistry.RecordNotProvider.selector, who[i])
            );
            registerAs(who[i], ENDPOINT_A, serviceA);
        }
        assertEq(bytes(records.gatekeeperOf(stranger).endpoint).length, 0);
    }

    function test_registerHolder_revertsForRevokedProvider() public {
        vm.prank(governor);
        participants.revokeCredential(hospitalA);
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordNotProvider.selector, hospitalA)
        );
        registerAs(hospitalA, ENDPOINT_A, serviceA);
    }

    function test_registerHolder_revertsOnBadEndpointOrKey() public {
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordInvalidEndpoint.selector, 0));
        registerAs(hospitalA, "", serviceA);
        bytes memory long = new bytes(records.MAX_LOCATOR_LENGTH() + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordInvalidEndpoint.selector, long.length)
        );
        registerAs(hospitalA, string(long), serviceA);
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordZeroServiceKey.selector));
        registerAs(hospitalA, ENDPOINT_A, address(0));
    }

    // ------------------------------------------------------------ ids bound to holders

    /// The attack: B, under break-glass, anchors the id A will give its record before A does,
    /// so that A's own anchor reverts with RecordExists. Before ids were bound, B's anchor
    /// succeeded.
    function test_anchor_revertsIdOfAnotherHolderTakenFirst() public {
        grantAs(patient, hospitalA, LABS);
        vm.prank(hospitalB);
        consent.openEmergencyAccess(patient, keccak256("er"), CAP);
        IRecordRegistry.Pointer memory mine = pointer(hospitalA, patient, LABS_CAT, CONTENT);
        bytes32 idA = mine.recordId;

        IRecordRegistry.Pointer memory stolen = mine;
        stolen.locator = ATTACKER_URL;
        bytes32 expectedB = records.recordIdOf(hospitalB, patient, mine.commitment);
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordIdNotBound.selector, idA, expectedB)
        );
        vm.prank(hospitalB);
        records.anchor(stolen);

        IRecordRegistry.Pointer[] memory ps = new IRecordRegistry.Pointer[](1);
        ps[0] = stolen;
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordIdNotBound.selector, idA, expectedB)
        );
        vm.prank(hospitalB);
        records.anchorBatch(ps);

        // A anchors its record under its id.
        mine.locator = "https://hospital-a.example/records/1";
        vm.prank(hospitalA);
        records.anchor(mine);
        (bytes32 c,) = records.pointerOf(idA);
        assertEq(c, mine.commitment);
    }

    function test_anchor_revertsIdNotDerivedFromItsFields() public {
        grantAs(patient, hospitalA, LABS);
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, CONTENT);
        bytes32 expected = p.recordId;
        p.recordId = keccak256("record 1");
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordIdNotBound.selector, p.recordId, expected)
        );
        vm.prank(hospitalA);
        records.anchor(p);
        // Another patient's id for the same commitment is just as wrong.
        p.recordId = records.recordIdOf(hospitalA, guardian, p.commitment);
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordIdNotBound.selector, p.recordId, expected)
        );
        vm.prank(hospitalA);
        records.anchor(p);
    }

    function test_recordIdOf_isTheBoundFormula() public view {
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, CONTENT);
        assertEq(records.recordIdOf(hospitalA, patient, p.commitment), p.recordId);
        // The value crates/protocol's record_id test pins (holder 0x11.., patient 0x22..,
        // commitment 0x33..): one formula on both sides.
        assertEq(
            records.recordIdOf(
                address(0x1111111111111111111111111111111111111111),
                address(0x2222222222222222222222222222222222222222),
                0x3333333333333333333333333333333333333333333333333333333333333333
            ),
            0x93a444846e4fda069407f6c3b1f13662af7192b9829015f800dc507b04dfeab1
        );
    }

    // ------------------------------------------------------------ break-glass mark

    /// The attack: B, with no grant, anchors a fake record of the patient under break-glass.
    /// It may (the emergency must stay possible), but the pointer says so.
    function test_anchor_underBreakGlassIsMarked() public {
        vm.prank(hospitalB);
        consent.openEmergencyAccess(patient, keccak256("er"), CAP);
        IRecordRegistry.Pointer memory p = pointer(hospitalB, patient, SEXUAL_HEALTH, CONTENT);
        p.locator = ATTACKER_URL;

        vm.expectEmit(true, true, true, true, address(records));
        emit IRecordRegistry.PointerAnchored(
            p.recordId, patient, hospitalB, p.commitment, ATTACKER_URL
        );
        vm.expectEmit(true, true, true, true, address(records));
        emit IRecordRegistry.PointerAnchoredUnderBreakGlass(p.recordId, patient, hospitalB);
        vm.prank(hospitalB);
        records.anchor(p);
        assertTrue(records.anchoredUnderBreakGlass(p.recordId));
    }

    function test_anchor_underAGrantIsNotMarked() public {
        grantAs(patient, hospitalA, LABS);
        // Break-glass open too: a live grant makes it an ordinary anchor, so no mark.
        vm.prank(hospitalA);
        consent.openEmergencyAccess(patient, keccak256("er"), CAP);
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, CONTENT);
        vm.recordLogs();
        vm.prank(hospitalA);
        records.anchor(p);
        assertEq(vm.getRecordedLogs().length, 1, "PointerAnchored only");
        assertFalse(records.anchoredUnderBreakGlass(p.recordId));
    }

    /// Issue 16 changed the mark: the registry no longer sees a record's category, so a
    /// pointer is marked when its holder had no live grant of the patient at all (before, when
    /// the grant did not cover its category).
    function test_anchorBatch_marksOnlyThePointersWithoutAGrant() public {
        grantAs(patient, hospitalA, LABS);
        vm.prank(hospitalA);
        consent.openEmergencyAccess(guardian, keccak256("er"), CAP);
        IRecordRegistry.Pointer[] memory ps = new IRecordRegistry.Pointer[](3);
        ps[0] = pointer(hospitalA, patient, LABS_CAT, sha256("granted"));
        ps[1] = pointer(hospitalA, guardian, SEXUAL_HEALTH, sha256("emergency"));
        ps[2] = pointer(hospitalA, patient, SEXUAL_HEALTH, sha256("granted, other category"));
        vm.prank(hospitalA);
        records.anchorBatch(ps);
        assertFalse(records.anchoredUnderBreakGlass(ps[0].recordId));
        assertTrue(records.anchoredUnderBreakGlass(ps[1].recordId));
        assertFalse(records.anchoredUnderBreakGlass(ps[2].recordId));
    }

    // ------------------------------------------------------------ the log's keys

    function test_anchorAccessLog_byTheRegisteredServiceKey() public {
        registerAs(hospitalA, ENDPOINT_A, serviceA);
        vm.expectEmit(true, false, false, true, address(records));
        emit IRecordRegistry.AccessLogAnchored(hospitalA, keccak256("h"), 5, now40());
        vm.prank(serviceA);
        records.anchorAccessLog(hospitalA, keccak256("h"), 5);
        // The log stays the holder's; the service key has none of its own.
        assertEq(records.accessLogOf(hospitalA).entries, 5);
        assertEq(records.accessLogOf(serviceA).entries, 0);
        // The holder's own key still may.
        vm.prank(hospitalA);
        records.anchorAccessLog(hospitalA, keccak256("h2"), 6);
        assertEq(records.accessLogOf(hospitalA).head, keccak256("h2"));
    }

    function test_anchorAccessLog_revertsForAnyOtherKey() public {
        registerAs(hospitalA, ENDPOINT_A, serviceA);
        registerAs(hospitalB, ENDPOINT_B, serviceB);
        address[4] memory who = [stranger, hospitalB, serviceB, patient];
        for (uint256 i; i < who.length; ++i) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IRecordRegistry.RecordNotHolderKey.selector, who[i], hospitalA
                )
            );
            vm.prank(who[i]);
            records.anchorAccessLog(hospitalA, keccak256("forged"), 1_000);
        }
        assertEq(records.accessLogOf(hospitalA).entries, 0);
    }

    function test_anchorAccessLog_revertsForAReplacedServiceKey() public {
        registerAs(hospitalA, ENDPOINT_A, serviceA);
        registerAs(hospitalA, ENDPOINT_A, serviceB);
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordNotHolderKey.selector, serviceA, hospitalA)
        );
        vm.prank(serviceA);
        records.anchorAccessLog(hospitalA, keccak256("h"), 1);
        vm.prank(serviceB);
        records.anchorAccessLog(hospitalA, keccak256("h"), 1);
    }

    function test_anchorAccessLog_revertsWhenTheHolderIsNoLongerCredentialed() public {
        registerAs(hospitalA, ENDPOINT_A, serviceA);
        vm.prank(governor);
        participants.revokeCredential(hospitalA);
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordNotProvider.selector, hospitalA)
        );
        vm.prank(serviceA);
        records.anchorAccessLog(hospitalA, keccak256("h"), 1);
    }

    /// The attack: a leaked service key anchors the largest count there is, so every later
    /// anchor of the holder (which must be larger) reverts for good. Before the bound, the junk
    /// anchor was accepted and the holder's next anchor reverted with RecordInvalidLogAnchor.
    function test_anchorAccessLog_revertsGrowthBeyondTheBound() public {
        registerAs(hospitalA, ENDPOINT_A, serviceA);
        vm.prank(serviceA);
        records.anchorAccessLog(hospitalA, keccak256("h"), 10);

        vm.expectRevert(
            abi.encodeWithSelector(
                IRecordRegistry.RecordLogGrowthTooLarge.selector, type(uint64).max, 10
            )
        );
        vm.prank(serviceA);
        records.anchorAccessLog(hospitalA, keccak256("junk"), type(uint64).max);
        uint64 over = 10 + records.MAX_LOG_GROWTH() + 1;
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordLogGrowthTooLarge.selector, over, 10)
        );
        vm.prank(hospitalA);
        records.anchorAccessLog(hospitalA, keccak256("junk"), over);

        // The holder's log goes on.
        vm.prank(serviceA);
        records.anchorAccessLog(hospitalA, keccak256("h2"), 11);
        assertEq(records.accessLogOf(hospitalA).entries, 11);
    }

    /// What a leaked key can still do, and the holder's way out: one junk anchor adds at most
    /// MAX_LOG_GROWTH entries (reaching the largest count would take 2**32 anchors), and the
    /// holder registering a new service key stops the leaked one.
    function test_anchorAccessLog_aLeakedKeyIsBoundedAndReplaced() public {
        registerAs(hospitalA, ENDPOINT_A, serviceA);
        uint64 junk = records.MAX_LOG_GROWTH();
        vm.prank(serviceA);
        records.anchorAccessLog(hospitalA, keccak256("junk"), junk);
        assertEq(records.accessLogOf(hospitalA).entries, junk);

        registerAs(hospitalA, ENDPOINT_A, serviceB);
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordNotHolderKey.selector, serviceA, hospitalA)
        );
        vm.prank(serviceA);
        records.anchorAccessLog(hospitalA, keccak256("more junk"), junk + 1);
        vm.prank(serviceB);
        records.anchorAccessLog(hospitalA, keccak256("h"), junk + 1);
        assertEq(records.accessLogOf(hospitalA).entries, junk + 1);
    }
}
