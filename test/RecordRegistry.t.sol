// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Vm} from "forge-std/Vm.sol";
import {Base} from "./Base.t.sol";
import {IRecordRegistry} from "../contracts/interfaces/IRecordRegistry.sol";
import {RecordRegistry} from "../contracts/RecordRegistry.sol";

contract RecordRegistryTest is Base {
    address internal patient2 = makeAddr("patient2");
    address internal patient3 = makeAddr("patient3");

    // Immutable, not constant: a constant sha256 is re-evaluated (a precompile call) at each
    // use, which would consume a pending vm.expectRevert.
    bytes32 internal immutable HASH1 = sha256("lab result v1");
    bytes32 internal immutable HASH2 = sha256("lab result v2");
    bytes32 internal immutable HASH3 = sha256("clinical note");

    // Record ids are bound to holder, patient and content: these are hospitalA's records of
    // `patient` with HASH1..3; a test anchoring other fields takes its id from {idOf}.
    bytes32 internal ID1;
    bytes32 internal ID2;
    bytes32 internal ID3;

    function setUp() public override {
        super.setUp();
        ID1 = idOf(hospitalA, patient, HASH1);
        ID2 = idOf(hospitalA, patient, HASH2);
        ID3 = idOf(hospitalA, patient, HASH3);
        // patient: hospitalA may read labs and notes. patient2: hospitalA labs only.
        // patient3: hospitalA everything. hospitalB has no relationship with anyone.
        grantAs(patient, hospitalA, LABS | NOTES);
        grantAs(patient2, hospitalA, LABS);
        grantAs(patient3, hospitalA, type(uint64).max);
    }

    // ------------------------------------------------------------ helpers

    function idOf(address holder, address p, bytes32 hash) internal pure returns (bytes32) {
        return keccak256(abi.encode(holder, p, hash));
    }

    function anchorAs(address holder, IRecordRegistry.Pointer memory p, bytes32 supersededHash)
        internal
    {
        vm.prank(holder);
        records.anchor(p, supersededHash);
    }

    function anchorAs(address holder, IRecordRegistry.Pointer memory p) internal {
        anchorAs(holder, p, bytes32(0));
    }

    function batchAs(address holder, IRecordRegistry.Pointer[] memory ps) internal {
        vm.prank(holder);
        records.anchorBatch(ps);
    }

    function amendment(bytes32 id, address p, uint8 category, bytes32 hash, bytes32 supersedes)
        internal
        pure
        returns (IRecordRegistry.Pointer memory ptr)
    {
        ptr = pointer(id, p, category, hash);
        ptr.supersedes = supersedes;
    }

    function expectAnchored(IRecordRegistry.Pointer memory p, address holder) internal {
        expectAnchored(p, holder, false);
    }

    /// @dev `breakGlass`: the holder's grant does not cover the pointer's category.
    function expectAnchored(IRecordRegistry.Pointer memory p, address holder, bool breakGlass)
        internal
    {
        vm.expectEmit(true, true, true, true, address(records));
        emit IRecordRegistry.PointerAnchored(
            p.recordId, p.patient, holder, p.category, p.contentHash, p.locator
        );
        if (breakGlass) {
            vm.expectEmit(true, true, true, true, address(records));
            emit IRecordRegistry.PointerAnchoredUnderBreakGlass(p.recordId, p.patient, holder);
        }
    }

    function expectSuperseded(bytes32 oldId, bytes32 newId) internal {
        vm.expectEmit(true, true, true, true, address(records));
        emit IRecordRegistry.PointerSuperseded(oldId, newId);
    }

    /// @dev Topic 0 of every log `records` emitted since {vm.recordLogs}.
    function recordedTopics() internal returns (bytes32[] memory topics) {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256 n;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(records)) ++n;
        }
        topics = new bytes32[](n);
        n = 0;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(records)) topics[n++] = logs[i].topics[0];
        }
    }

    function commitment(bytes32 id) internal view returns (bytes32 c) {
        (c,) = records.pointerOf(id);
    }

    function supersededBy(bytes32 id) internal view returns (bytes32 s) {
        (, s) = records.pointerOf(id);
    }

    function assertNotStored(bytes32 id) internal view {
        (bytes32 c, bytes32 s) = records.pointerOf(id);
        assertEq(c, bytes32(0), "commitment stored");
        assertEq(s, bytes32(0), "supersededBy stored");
    }

    function assertStored(IRecordRegistry.Pointer memory p, address holder) internal view {
        assertEq(
            commitment(p.recordId),
            records.commitmentOf(p.patient, holder, p.category, p.contentHash),
            "commitment"
        );
        assertTrue(records.verifyPointer(p.recordId, p.patient, holder, p.category, p.contentHash));
    }

    function noRelationship(address holder, address p, uint8 category)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodeWithSelector(
            IRecordRegistry.RecordNoRelationship.selector, holder, p, category
        );
    }

    function invalidSupersede(bytes32 id) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IRecordRegistry.RecordInvalidSupersede.selector, id);
    }

    function notProvider(address holder) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IRecordRegistry.RecordNotProvider.selector, holder);
    }

    function stringOfLength(uint256 len) internal pure returns (string memory) {
        bytes memory b = new bytes(len);
        for (uint256 i; i < len; ++i) {
            b[i] = "a";
        }
        return string(b);
    }

    function batchOf(IRecordRegistry.Pointer memory a, IRecordRegistry.Pointer memory b)
        internal
        pure
        returns (IRecordRegistry.Pointer[] memory ps)
    {
        ps = new IRecordRegistry.Pointer[](2);
        ps[0] = a;
        ps[1] = b;
    }

    function batchOf(
        IRecordRegistry.Pointer memory a,
        IRecordRegistry.Pointer memory b,
        IRecordRegistry.Pointer memory c
    ) internal pure returns (IRecordRegistry.Pointer[] memory ps) {
        ps = new IRecordRegistry.Pointer[](3);
        ps[0] = a;
        ps[1] = b;
        ps[2] = c;
    }

    // -------------------------------------------------------- constructor

    function test_constructor_wiresRegistries() public view {
        assertEq(address(records.participants()), address(participants));
        assertEq(address(records.consent()), address(consent));
        assertEq(records.MAX_LOCATOR_LENGTH(), 256);
        assertEq(records.MAX_BATCH(), 200);
    }

    // ------------------------------------------- gatekeeper domain (ERC-5267)

    // The gatekeeper's domain for a registry at GK_REGISTRY on chain 31337, and the digest of one
    // RecordRequest under it, computed once with cast (keccak256 and abi-encode by hand) and
    // checked against `medrec_bindings::gatekeeper_domain(31337, GK_REGISTRY).separator()` and
    // `RecordRequest::eip712_signing_hash`: what a gatekeeper verifies is what this returns.
    address internal constant GK_REGISTRY = address(0xE5267);
    bytes32 internal constant GK_SEPARATOR =
        0x9c5c813a18f60135f3579cffd0493595c020137638dc4504936b99cc7371f4be;
    bytes32 internal constant GK_REQUEST_DIGEST =
        0xf113258eb891795fe67f254d52198bc3352cbedd3828f847493e688156445f9c;
    bytes32 internal constant EIP712_DOMAIN_TYPEHASH = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    );
    bytes32 internal constant RECORD_REQUEST_TYPEHASH = keccak256(
        "RecordRequest(address requester,bytes32 recordId,address audience,uint256 nonce,uint64 issuedAt,uint64 expiresAt)"
    );

    /// @dev The separator a client builds from what {eip712Domain} returns.
    function separatorOfDomain(IRecordRegistry r) internal view returns (bytes32) {
        (, string memory name, string memory version, uint256 chainId, address verifying,,) =
            r.eip712Domain();
        return keccak256(
            abi.encode(
                EIP712_DOMAIN_TYPEHASH,
                keccak256(bytes(name)),
                keccak256(bytes(version)),
                chainId,
                verifying
            )
        );
    }

    function test_eip712Domain_isTheGatekeepersDomain() public view {
        (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        ) = records.eip712Domain();
        assertEq(fields, hex"0f");
        assertEq(name, "medrec.Gatekeeper");
        assertEq(version, "1");
        assertEq(chainId, block.chainid);
        assertEq(verifyingContract, address(records));
        assertEq(salt, bytes32(0));
        assertEq(extensions.length, 0);
        assertEq(separatorOfDomain(records), records.DOMAIN_SEPARATOR());
    }

    function test_eip712Domain_separatorMatchesRustBindings() public {
        vm.chainId(31337);
        deployCodeTo(
            "RecordRegistry.sol:RecordRegistry", abi.encode(participants, consent), GK_REGISTRY
        );
        IRecordRegistry r = IRecordRegistry(GK_REGISTRY);
        assertEq(separatorOfDomain(r), GK_SEPARATOR);
        assertEq(RecordRegistry(GK_REGISTRY).DOMAIN_SEPARATOR(), GK_SEPARATOR);
    }

    function test_eip712Domain_recordRequestDigestMatchesRustBindings() public {
        vm.chainId(31337);
        deployCodeTo(
            "RecordRegistry.sol:RecordRegistry", abi.encode(participants, consent), GK_REGISTRY
        );
        bytes32 structHash = keccak256(
            abi.encode(
                RECORD_REQUEST_TYPEHASH,
                address(0xA11CE),
                keccak256("record 1"),
                address(0xB0B),
                uint256(7),
                uint64(1_800_000_000),
                uint64(1_800_000_300)
            )
        );
        bytes32 digest_ = keccak256(
            abi.encodePacked(
                "\x19\x01", separatorOfDomain(IRecordRegistry(GK_REGISTRY)), structHash
            )
        );
        assertEq(digest_, GK_REQUEST_DIGEST);
    }

    function test_eip712Domain_followsTheChainId() public {
        bytes32 before = records.DOMAIN_SEPARATOR();
        vm.chainId(block.chainid + 1);
        (,,, uint256 chainId,,,) = records.eip712Domain();
        assertEq(chainId, block.chainid);
        assertNotEq(records.DOMAIN_SEPARATOR(), before);
        assertEq(separatorOfDomain(records), records.DOMAIN_SEPARATOR());
    }

    // --------------------------------------------------- views (pure-ish)

    function test_commitmentOf_matchesEncoding() public view {
        assertEq(
            records.commitmentOf(patient, hospitalA, LABS_CAT, HASH1),
            keccak256(abi.encode(patient, hospitalA, LABS_CAT, HASH1))
        );
    }

    function test_pointerOf_unknownIsZero() public view {
        assertNotStored(ID1);
        assertNotStored(bytes32(0));
    }

    function test_verifyPointer_unknownFalse() public view {
        assertFalse(records.verifyPointer(ID1, patient, hospitalA, LABS_CAT, HASH1));
        // The zero id is never anchored, whatever the fields.
        assertFalse(records.verifyPointer(bytes32(0), address(0), address(0), 0, bytes32(0)));
    }

    // ------------------------------------------------------------- anchor

    function test_anchor_emitsAndStores() public {
        IRecordRegistry.Pointer memory p = pointer(ID1, patient, LABS_CAT, HASH1);
        vm.recordLogs();
        expectAnchored(p, hospitalA);
        anchorAs(hospitalA, p);

        // Exactly one event: no {PointerSuperseded} for a record amending nothing.
        bytes32[] memory topics = recordedTopics();
        assertEq(topics.length, 1);
        assertEq(topics[0], IRecordRegistry.PointerAnchored.selector);

        (bytes32 c, bytes32 s) = records.pointerOf(ID1);
        assertEq(c, records.commitmentOf(patient, hospitalA, LABS_CAT, HASH1));
        assertEq(c, keccak256(abi.encode(patient, hospitalA, LABS_CAT, HASH1)));
        assertEq(s, bytes32(0));
        assertTrue(records.verifyPointer(ID1, patient, hospitalA, LABS_CAT, HASH1));
    }

    function test_anchor_verifyPointerFalseForAnyChangedField() public {
        anchorAs(hospitalA, pointer(ID1, patient, LABS_CAT, HASH1));

        assertTrue(records.verifyPointer(ID1, patient, hospitalA, LABS_CAT, HASH1));
        assertFalse(records.verifyPointer(ID2, patient, hospitalA, LABS_CAT, HASH1), "id");
        assertFalse(records.verifyPointer(ID1, patient2, hospitalA, LABS_CAT, HASH1), "patient");
        assertFalse(records.verifyPointer(ID1, patient, hospitalB, LABS_CAT, HASH1), "holder");
        assertFalse(records.verifyPointer(ID1, patient, hospitalA, NOTES_CAT, HASH1), "category");
        assertFalse(records.verifyPointer(ID1, patient, hospitalA, LABS_CAT, HASH2), "hash");
        assertFalse(records.verifyPointer(ID1, address(0), address(0), 0, bytes32(0)), "zeros");
    }

    function test_anchor_ignoresSupersededHashWhenNotSuperseding() public {
        IRecordRegistry.Pointer memory p = pointer(ID1, patient, LABS_CAT, HASH1);
        expectAnchored(p, hospitalA);
        anchorAs(hospitalA, p, keccak256("anything"));
        assertStored(p, hospitalA);
        assertEq(supersededBy(ID1), bytes32(0));
    }

    function test_anchor_severalRecordsSamePatient() public {
        anchorAs(hospitalA, pointer(ID1, patient, LABS_CAT, HASH1));
        anchorAs(hospitalA, pointer(ID3, patient, NOTES_CAT, HASH3));
        anchorAs(hospitalA, pointer(ID2, patient, LABS_CAT, HASH2));
        assertStored(pointer(ID1, patient, LABS_CAT, HASH1), hospitalA);
        assertStored(pointer(ID3, patient, NOTES_CAT, HASH3), hospitalA);
        assertStored(pointer(ID2, patient, LABS_CAT, HASH2), hospitalA);
        // The same content again is the same record (its id is bound to holder, patient and
        // content), whatever its category.
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordExists.selector, ID1));
        anchorAs(hospitalA, pointer(ID1, patient, NOTES_CAT, HASH1));
    }

    function test_anchor_category63() public {
        IRecordRegistry.Pointer memory p =
            pointer(idOf(hospitalA, patient3, HASH1), patient3, 63, HASH1);
        expectAnchored(p, hospitalA);
        anchorAs(hospitalA, p);
        assertStored(p, hospitalA);
    }

    function test_anchor_category0() public {
        IRecordRegistry.Pointer memory p =
            pointer(idOf(hospitalA, patient3, HASH1), patient3, 0, HASH1);
        anchorAs(hospitalA, p);
        assertStored(p, hospitalA);
    }

    function test_anchor_revertsZeroId() public {
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordZeroId.selector));
        anchorAs(hospitalA, pointer(bytes32(0), patient, LABS_CAT, HASH1));
        assertNotStored(bytes32(0));
    }

    function test_anchor_revertsZeroPatient() public {
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordZeroPatient.selector));
        anchorAs(hospitalA, pointer(ID1, address(0), LABS_CAT, HASH1));
        assertNotStored(ID1);
    }

    function test_anchor_revertsZeroHash() public {
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordZeroHash.selector));
        anchorAs(hospitalA, pointer(ID1, patient, LABS_CAT, bytes32(0)));
        assertNotStored(ID1);
    }

    function test_anchor_revertsEmptyLocator() public {
        IRecordRegistry.Pointer memory p = pointer(ID1, patient, LABS_CAT, HASH1);
        p.locator = "";
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordInvalidLocator.selector, uint256(0))
        );
        anchorAs(hospitalA, p);
        assertNotStored(ID1);
    }

    function test_anchor_revertsLocatorTooLong() public {
        IRecordRegistry.Pointer memory p = pointer(ID1, patient, LABS_CAT, HASH1);
        p.locator = stringOfLength(257);
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordInvalidLocator.selector, uint256(257))
        );
        anchorAs(hospitalA, p);
        assertNotStored(ID1);
    }

    function test_anchor_locatorOfMaxLengthSucceeds() public {
        IRecordRegistry.Pointer memory p = pointer(ID1, patient, LABS_CAT, HASH1);
        p.locator = stringOfLength(256);
        expectAnchored(p, hospitalA);
        anchorAs(hospitalA, p);
        assertStored(p, hospitalA);
    }

    function test_anchor_locatorOfOneByteSucceeds() public {
        IRecordRegistry.Pointer memory p = pointer(ID1, patient, LABS_CAT, HASH1);
        p.locator = "x";
        expectAnchored(p, hospitalA);
        anchorAs(hospitalA, p);
        assertStored(p, hospitalA);
    }

    function test_anchor_revertsInvalidCategory() public {
        // patient3 granted every bit, so only the category check can fail.
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordInvalidCategory.selector, uint8(64))
        );
        anchorAs(hospitalA, pointer(ID1, patient3, 64, HASH1));

        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordInvalidCategory.selector, uint8(255))
        );
        anchorAs(hospitalA, pointer(ID1, patient3, 255, HASH1));
        assertNotStored(ID1);
    }

    function test_anchor_revertsExists() public {
        anchorAs(hospitalA, pointer(ID1, patient, LABS_CAT, HASH1));
        bytes32 before = commitment(ID1);

        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordExists.selector, ID1));
        anchorAs(hospitalA, pointer(ID1, patient, LABS_CAT, HASH1));

        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordExists.selector, ID1));
        anchorAs(hospitalA, pointer(ID1, patient, NOTES_CAT, HASH1));

        assertEq(commitment(ID1), before);
    }

    function test_anchor_revertsIdOfAnotherHolder() public {
        // Ids are bound to their holder: another holder's id is refused as not bound to the
        // caller (before, it reverted only because the id existed; see HolderEndpoints.t.sol
        // for the id taken first).
        anchorAs(hospitalA, pointer(ID1, patient, LABS_CAT, HASH1));
        bytes32 before = commitment(ID1);
        grantAs(patient, hospitalB, LABS);

        vm.expectRevert(
            abi.encodeWithSelector(
                IRecordRegistry.RecordIdNotBound.selector, ID1, idOf(hospitalB, patient, HASH2)
            )
        );
        anchorAs(hospitalB, pointer(ID1, patient, LABS_CAT, HASH2));

        assertEq(commitment(ID1), before);
        assertTrue(records.verifyPointer(ID1, patient, hospitalA, LABS_CAT, HASH1));
        assertFalse(records.verifyPointer(ID1, patient, hospitalB, LABS_CAT, HASH2));
    }

    function test_anchor_revertsNotProviderStranger() public {
        vm.expectRevert(notProvider(stranger));
        anchorAs(stranger, pointer(ID1, patient, LABS_CAT, HASH1));
        assertNotStored(ID1);
    }

    function test_anchor_revertsNotProviderResearcher() public {
        // Even with a grant from the patient, a researcher is not a provider.
        grantAs(patient, researcher, LABS);
        vm.expectRevert(notProvider(researcher));
        anchorAs(researcher, pointer(ID1, patient, LABS_CAT, HASH1));
        assertNotStored(ID1);
    }

    function test_anchor_revertsNotProviderPatient() public {
        vm.expectRevert(notProvider(patient));
        anchorAs(patient, pointer(ID1, patient, LABS_CAT, HASH1));
    }

    function test_anchor_revertsNotProviderRevoked() public {
        vm.prank(governor);
        participants.revokeCredential(hospitalA);
        vm.expectRevert(notProvider(hospitalA));
        anchorAs(hospitalA, pointer(ID1, patient, LABS_CAT, HASH1));
        assertNotStored(ID1);
    }

    function test_anchor_revertsNotProviderExpired() public {
        // A grant outliving the credential does not help.
        vm.prank(patient);
        consent.grant(patient, hospitalA, LABS, TREATMENT, 0, now40() + 2 * YEAR);
        vm.warp(participants.credentialOf(hospitalA).expiresAt);
        vm.expectRevert(notProvider(hospitalA));
        anchorAs(hospitalA, pointer(ID1, patient, LABS_CAT, HASH1));
        assertNotStored(ID1);
    }

    function test_anchor_revertsNotProviderBeforeArgumentChecks() public {
        vm.expectRevert(notProvider(stranger));
        anchorAs(stranger, pointer(bytes32(0), address(0), 64, bytes32(0)));
    }

    function test_anchor_revertsNoRelationshipWithoutGrant() public {
        vm.expectRevert(noRelationship(hospitalB, patient, LABS_CAT));
        anchorAs(hospitalB, pointer(ID1, patient, LABS_CAT, HASH1));
        assertNotStored(ID1);
    }

    function test_anchor_revertsNoRelationshipCategoryNotGranted() public {
        vm.expectRevert(noRelationship(hospitalA, patient2, NOTES_CAT));
        anchorAs(hospitalA, pointer(ID1, patient2, NOTES_CAT, HASH1));
        // Category 0 is not implied by a grant either.
        vm.expectRevert(noRelationship(hospitalA, patient, 0));
        anchorAs(hospitalA, pointer(ID1, patient, 0, HASH1));
        assertNotStored(ID1);
    }

    function test_anchor_revertsNoRelationshipGrantExpired() public {
        uint40 expiresAt = now40() + 1 days;
        vm.prank(patient);
        consent.grant(patient, hospitalB, LABS, TREATMENT, 0, expiresAt);

        vm.warp(expiresAt - 1);
        anchorAs(hospitalB, pointer(idOf(hospitalB, patient, HASH1), patient, LABS_CAT, HASH1));
        assertStored(pointer(idOf(hospitalB, patient, HASH1), patient, LABS_CAT, HASH1), hospitalB);

        vm.warp(expiresAt);
        vm.expectRevert(noRelationship(hospitalB, patient, LABS_CAT));
        anchorAs(hospitalB, pointer(ID2, patient, LABS_CAT, HASH2));
        assertNotStored(ID2);
    }

    function test_anchor_revertsNoRelationshipGrantRevoked() public {
        vm.prank(patient);
        consent.revoke(patient, hospitalA);
        vm.expectRevert(noRelationship(hospitalA, patient, LABS_CAT));
        anchorAs(hospitalA, pointer(ID1, patient, LABS_CAT, HASH1));
        assertNotStored(ID1);
    }

    function test_anchor_revertsNoRelationshipGrantNotStarted() public {
        uint40 notBefore = now40() + 1 days;
        vm.prank(patient);
        consent.grant(patient, hospitalB, LABS, TREATMENT, notBefore, notBefore + 1 days);

        bytes32 idB1 = idOf(hospitalB, patient, HASH1);
        vm.warp(notBefore - 1);
        vm.expectRevert(noRelationship(hospitalB, patient, LABS_CAT));
        anchorAs(hospitalB, pointer(idB1, patient, LABS_CAT, HASH1));
        assertNotStored(idB1);

        vm.warp(notBefore);
        anchorAs(hospitalB, pointer(idB1, patient, LABS_CAT, HASH1));
        assertStored(pointer(idB1, patient, LABS_CAT, HASH1), hospitalB);
    }

    function test_anchor_revertsNoRelationshipGrantToAnotherProvider() public {
        // hospitalA's grant from patient gives hospitalB nothing.
        vm.expectRevert(noRelationship(hospitalB, patient, NOTES_CAT));
        anchorAs(hospitalB, pointer(ID1, patient, NOTES_CAT, HASH1));
    }

    function test_anchor_breakGlassGivesRelationship() public {
        vm.prank(hospitalB);
        consent.openEmergencyAccess(patient, keccak256("unconscious in ER"), CAP);

        // Any category, not just the ones the patient granted to someone.
        IRecordRegistry.Pointer memory p =
            pointer(idOf(hospitalB, patient, HASH1), patient, 42, HASH1);
        expectAnchored(p, hospitalB, true);
        anchorAs(hospitalB, p);
        assertStored(p, hospitalB);

        // Once the window closes, the relationship is gone.
        vm.warp(block.timestamp + CAP);
        vm.expectRevert(noRelationship(hospitalB, patient, 42));
        anchorAs(hospitalB, pointer(ID2, patient, 42, HASH2));
        // The anchored pointer stays.
        assertStored(p, hospitalB);
    }

    function test_anchor_breakGlassBeyondPartialGrant() public {
        // hospitalA holds a grant for labs and notes only; break-glass covers the rest.
        vm.expectRevert(noRelationship(hospitalA, patient, 42));
        anchorAs(hospitalA, pointer(ID1, patient, 42, HASH1));

        vm.prank(hospitalA);
        consent.openEmergencyAccess(patient, keccak256("seizure"), CAP);
        IRecordRegistry.Pointer memory p = pointer(ID1, patient, 42, HASH1);
        expectAnchored(p, hospitalA, true);
        anchorAs(hospitalA, p);
        assertStored(p, hospitalA);
        assertTrue(records.anchoredUnderBreakGlass(ID1), "marked");

        // After the window, the grant still covers labs but no longer category 42.
        vm.warp(block.timestamp + CAP);
        anchorAs(hospitalA, pointer(ID2, patient, LABS_CAT, HASH2));
        assertFalse(records.anchoredUnderBreakGlass(ID2), "granted: not marked");
        vm.expectRevert(noRelationship(hospitalA, patient, 42));
        anchorAs(hospitalA, pointer(ID3, patient, 42, HASH3));
    }

    function test_anchor_breakGlassDoesNotOutliveCredential() public {
        vm.prank(hospitalB);
        consent.openEmergencyAccess(patient, keccak256("unconscious in ER"), CAP);
        vm.prank(governor);
        participants.revokeCredential(hospitalB);
        vm.expectRevert(notProvider(hospitalB));
        anchorAs(hospitalB, pointer(ID1, patient, LABS_CAT, HASH1));
    }

    function test_anchor_breakGlassClosedRevertsNoRelationship() public {
        vm.prank(hospitalB);
        consent.openEmergencyAccess(patient, keccak256("unconscious in ER"), CAP);
        vm.prank(patient);
        consent.closeEmergencyAccess(patient, hospitalB);
        vm.expectRevert(noRelationship(hospitalB, patient, LABS_CAT));
        anchorAs(hospitalB, pointer(ID1, patient, LABS_CAT, HASH1));
    }

    // --------------------------------------------------------- supersede

    function test_anchor_amendmentSupersedes() public {
        IRecordRegistry.Pointer memory oldP = pointer(ID1, patient, LABS_CAT, HASH1);
        anchorAs(hospitalA, oldP);
        bytes32 oldCommitment = commitment(ID1);

        IRecordRegistry.Pointer memory newP = amendment(ID2, patient, LABS_CAT, HASH2, ID1);
        vm.recordLogs();
        expectAnchored(newP, hospitalA);
        expectSuperseded(ID1, ID2);
        anchorAs(hospitalA, newP, HASH1);

        // {PointerAnchored} of the new record, then {PointerSuperseded}, nothing else.
        bytes32[] memory topics = recordedTopics();
        assertEq(topics.length, 2);
        assertEq(topics[0], IRecordRegistry.PointerAnchored.selector);
        assertEq(topics[1], IRecordRegistry.PointerSuperseded.selector);

        (bytes32 c1, bytes32 s1) = records.pointerOf(ID1);
        assertEq(c1, oldCommitment, "old commitment kept");
        assertEq(s1, ID2, "old superseded by new");
        (bytes32 c2, bytes32 s2) = records.pointerOf(ID2);
        assertEq(c2, records.commitmentOf(patient, hospitalA, LABS_CAT, HASH2));
        assertEq(s2, bytes32(0));
        // Nothing deleted: both still verify.
        assertTrue(records.verifyPointer(ID1, patient, hospitalA, LABS_CAT, HASH1));
        assertTrue(records.verifyPointer(ID2, patient, hospitalA, LABS_CAT, HASH2));
    }

    function test_anchor_amendmentChain() public {
        anchorAs(hospitalA, pointer(ID1, patient, LABS_CAT, HASH1));
        anchorAs(hospitalA, amendment(ID2, patient, LABS_CAT, HASH2, ID1), HASH1);
        // The newest version may be amended in turn.
        expectAnchored(amendment(ID3, patient, LABS_CAT, HASH3, ID2), hospitalA);
        expectSuperseded(ID2, ID3);
        anchorAs(hospitalA, amendment(ID3, patient, LABS_CAT, HASH3, ID2), HASH2);
        assertEq(supersededBy(ID1), ID2);
        assertEq(supersededBy(ID2), ID3);
        assertEq(supersededBy(ID3), bytes32(0));
        assertTrue(records.verifyPointer(ID1, patient, hospitalA, LABS_CAT, HASH1));
        assertTrue(records.verifyPointer(ID2, patient, hospitalA, LABS_CAT, HASH2));
        assertTrue(records.verifyPointer(ID3, patient, hospitalA, LABS_CAT, HASH3));
    }

    function test_anchor_amendmentWithSameContentReverts() public {
        // The same content of the same patient at the same holder has one id: an amendment
        // must change the content.
        anchorAs(hospitalA, pointer(ID1, patient, LABS_CAT, HASH1));
        IRecordRegistry.Pointer memory newP = amendment(ID1, patient, LABS_CAT, HASH1, ID1);
        newP.locator = "https://hospital-a.example/records/moved";
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordExists.selector, ID1));
        anchorAs(hospitalA, newP, HASH1);
        assertEq(supersededBy(ID1), bytes32(0));
        assertStored(pointer(ID1, patient, LABS_CAT, HASH1), hospitalA);
    }

    function test_anchor_revertsSupersedeUnknown() public {
        bytes32 unknown = keccak256("never anchored");
        vm.expectRevert(invalidSupersede(unknown));
        anchorAs(hospitalA, amendment(ID2, patient, LABS_CAT, HASH2, unknown), HASH1);
        assertNotStored(ID2);
        assertNotStored(unknown);
    }

    function test_anchor_revertsSupersedeOtherHolder() public {
        grantAs(patient, hospitalB, LABS);
        bytes32 idB1 = idOf(hospitalB, patient, HASH1);
        anchorAs(hospitalB, pointer(idB1, patient, LABS_CAT, HASH1));

        vm.expectRevert(invalidSupersede(idB1));
        anchorAs(hospitalA, amendment(ID2, patient, LABS_CAT, HASH2, idB1), HASH1);
        assertNotStored(ID2);
        assertEq(supersededBy(idB1), bytes32(0));
    }

    function test_anchor_revertsSupersedeOtherPatient() public {
        bytes32 id21 = idOf(hospitalA, patient2, HASH1);
        anchorAs(hospitalA, pointer(id21, patient2, LABS_CAT, HASH1));

        vm.expectRevert(invalidSupersede(id21));
        anchorAs(hospitalA, amendment(ID2, patient, LABS_CAT, HASH2, id21), HASH1);
        assertNotStored(ID2);
        assertEq(supersededBy(id21), bytes32(0));
    }

    function test_anchor_revertsSupersedeOtherCategory() public {
        anchorAs(hospitalA, pointer(ID1, patient, LABS_CAT, HASH1));

        vm.expectRevert(invalidSupersede(ID1));
        anchorAs(hospitalA, amendment(ID2, patient, NOTES_CAT, HASH2, ID1), HASH1);
        assertNotStored(ID2);
        assertEq(supersededBy(ID1), bytes32(0));
    }

    function test_anchor_revertsSupersedeWrongHash() public {
        anchorAs(hospitalA, pointer(ID1, patient, LABS_CAT, HASH1));

        vm.expectRevert(invalidSupersede(ID1));
        anchorAs(hospitalA, amendment(ID2, patient, LABS_CAT, HASH2, ID1), HASH2);

        vm.expectRevert(invalidSupersede(ID1));
        anchorAs(hospitalA, amendment(ID2, patient, LABS_CAT, HASH2, ID1), bytes32(0));

        assertNotStored(ID2);
        assertEq(supersededBy(ID1), bytes32(0));
    }

    function test_anchor_revertsSupersedeItself() public {
        vm.expectRevert(invalidSupersede(ID1));
        anchorAs(hospitalA, amendment(ID1, patient, LABS_CAT, HASH1, ID1), HASH1);
        assertNotStored(ID1);
    }

    function test_anchor_revertsSupersedeAlreadySuperseded() public {
        anchorAs(hospitalA, pointer(ID1, patient, LABS_CAT, HASH1));
        anchorAs(hospitalA, amendment(ID2, patient, LABS_CAT, HASH2, ID1), HASH1);

        vm.expectRevert(invalidSupersede(ID1));
        anchorAs(hospitalA, amendment(ID3, patient, LABS_CAT, HASH3, ID1), HASH1);
        assertNotStored(ID3);
        assertEq(supersededBy(ID1), ID2);
    }

    function test_anchor_revertsSupersedeExistingIdAsExists() public {
        // Re-anchoring an existing id that names a supersede target fails as RecordExists.
        anchorAs(hospitalA, pointer(ID1, patient, LABS_CAT, HASH1));
        anchorAs(hospitalA, pointer(ID2, patient, LABS_CAT, HASH2));
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordExists.selector, ID2));
        anchorAs(hospitalA, amendment(ID2, patient, LABS_CAT, HASH2, ID1), HASH1);
        assertEq(supersededBy(ID1), bytes32(0));
    }

    function test_anchor_amendmentNeedsRelationship() public {
        anchorAs(hospitalA, pointer(ID1, patient, LABS_CAT, HASH1));
        vm.prank(patient);
        consent.revoke(patient, hospitalA);
        vm.expectRevert(noRelationship(hospitalA, patient, LABS_CAT));
        anchorAs(hospitalA, amendment(ID2, patient, LABS_CAT, HASH2, ID1), HASH1);
        assertEq(supersededBy(ID1), bytes32(0));
    }

    // -------------------------------------------------------- anchorBatch

    function test_anchorBatch_interleavedPatients() public {
        IRecordRegistry.Pointer[] memory ps = new IRecordRegistry.Pointer[](5);
        ps[0] = pointer(idOf(hospitalA, patient, sha256("c0")), patient, LABS_CAT, sha256("c0"));
        ps[1] = pointer(idOf(hospitalA, patient2, sha256("c1")), patient2, LABS_CAT, sha256("c1"));
        ps[2] = pointer(idOf(hospitalA, patient, sha256("c2")), patient, NOTES_CAT, sha256("c2"));
        ps[3] = pointer(idOf(hospitalA, patient3, sha256("c3")), patient3, 63, sha256("c3"));
        ps[4] = pointer(idOf(hospitalA, patient3, sha256("c4")), patient3, 0, sha256("c4"));
        ps[4].locator = "ipfs://x";

        vm.recordLogs();
        for (uint256 i; i < ps.length; ++i) {
            expectAnchored(ps[i], hospitalA);
        }
        batchAs(hospitalA, ps);
        bytes32[] memory topics = recordedTopics();
        assertEq(topics.length, ps.length);
        for (uint256 i; i < topics.length; ++i) {
            assertEq(topics[i], IRecordRegistry.PointerAnchored.selector);
        }

        for (uint256 i; i < ps.length; ++i) {
            assertStored(ps[i], hospitalA);
            assertEq(supersededBy(ps[i].recordId), bytes32(0));
        }
    }

    function test_anchorBatch_singlePointer() public {
        IRecordRegistry.Pointer[] memory ps = new IRecordRegistry.Pointer[](1);
        ps[0] = pointer(ID1, patient, LABS_CAT, HASH1);
        expectAnchored(ps[0], hospitalA);
        batchAs(hospitalA, ps);
        assertStored(ps[0], hospitalA);
    }

    function test_anchorBatch_maxBatch() public {
        uint256 n = records.MAX_BATCH();
        IRecordRegistry.Pointer[] memory ps = new IRecordRegistry.Pointer[](n);
        for (uint256 i; i < n; ++i) {
            address p = i % 2 == 0 ? patient : patient3;
            bytes32 h = keccak256(abi.encode(i));
            ps[i] = pointer(idOf(hospitalA, p, h), p, LABS_CAT, h);
        }
        batchAs(hospitalA, ps);
        assertStored(ps[0], hospitalA);
        assertStored(ps[n - 1], hospitalA);
    }

    function test_anchorBatch_allOrNone() public {
        IRecordRegistry.Pointer memory bad = pointer(ID2, patient, LABS_CAT, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordZeroHash.selector));
        batchAs(
            hospitalA,
            batchOf(
                pointer(ID1, patient, LABS_CAT, HASH1), bad, pointer(ID3, patient, LABS_CAT, HASH3)
            )
        );
        assertNotStored(ID1);
        assertNotStored(ID2);
        assertNotStored(ID3);
        assertFalse(records.verifyPointer(ID1, patient, hospitalA, LABS_CAT, HASH1));

        // The same batch with the bad pointer fixed goes through.
        bad.contentHash = HASH2;
        batchAs(
            hospitalA,
            batchOf(
                pointer(ID1, patient, LABS_CAT, HASH1), bad, pointer(ID3, patient, LABS_CAT, HASH3)
            )
        );
        assertStored(pointer(ID1, patient, LABS_CAT, HASH1), hospitalA);
        assertStored(bad, hospitalA);
        assertStored(pointer(ID3, patient, LABS_CAT, HASH3), hospitalA);
    }

    function test_anchorBatch_allOrNoneOnLastPointer() public {
        vm.expectRevert(noRelationship(hospitalA, patient2, NOTES_CAT));
        batchAs(
            hospitalA,
            batchOf(
                pointer(ID1, patient, LABS_CAT, HASH1),
                pointer(idOf(hospitalA, patient2, HASH2), patient2, LABS_CAT, HASH2),
                pointer(ID3, patient2, NOTES_CAT, HASH3)
            )
        );
        assertNotStored(ID1);
        assertNotStored(idOf(hospitalA, patient2, HASH2));
        assertNotStored(ID3);
    }

    function test_anchorBatch_revertsDuplicateIdInBatch() public {
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordExists.selector, ID1));
        batchAs(
            hospitalA,
            batchOf(pointer(ID1, patient, LABS_CAT, HASH1), pointer(ID1, patient, LABS_CAT, HASH1))
        );
        assertNotStored(ID1);
    }

    function test_anchorBatch_revertsIdAlreadyAnchored() public {
        anchorAs(hospitalA, pointer(ID2, patient, LABS_CAT, HASH2));
        bytes32 before = commitment(ID2);
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordExists.selector, ID2));
        batchAs(
            hospitalA,
            batchOf(pointer(ID1, patient, LABS_CAT, HASH1), pointer(ID2, patient, LABS_CAT, HASH2))
        );
        assertNotStored(ID1);
        assertEq(commitment(ID2), before);
    }

    function test_anchorBatch_revertsEmpty() public {
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordInvalidBatch.selector, uint256(0))
        );
        batchAs(hospitalA, new IRecordRegistry.Pointer[](0));
    }

    function test_anchorBatch_revertsAboveMax() public {
        uint256 n = records.MAX_BATCH() + 1;
        IRecordRegistry.Pointer[] memory ps = new IRecordRegistry.Pointer[](n);
        for (uint256 i; i < n; ++i) {
            ps[i] = pointer(keccak256(abi.encode(i)), patient, LABS_CAT, HASH1);
        }
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordInvalidBatch.selector, uint256(201))
        );
        batchAs(hospitalA, ps);
        assertNotStored(ps[0].recordId);
    }

    function test_anchorBatch_revertsSupersedes() public {
        anchorAs(hospitalA, pointer(ID1, patient, LABS_CAT, HASH1));
        // Even a valid amendment target is refused inside a batch.
        vm.expectRevert(invalidSupersede(ID1));
        batchAs(
            hospitalA,
            batchOf(
                pointer(ID3, patient, LABS_CAT, HASH3),
                amendment(ID2, patient, LABS_CAT, HASH2, ID1)
            )
        );
        assertNotStored(ID2);
        assertNotStored(ID3);
        assertEq(supersededBy(ID1), bytes32(0));

        bytes32 unknown = keccak256("unknown");
        vm.expectRevert(invalidSupersede(unknown));
        batchAs(
            hospitalA,
            batchOf(
                amendment(ID2, patient, LABS_CAT, HASH2, unknown),
                pointer(ID3, patient, LABS_CAT, HASH3)
            )
        );
    }

    function test_anchorBatch_revertsNotProvider() public {
        IRecordRegistry.Pointer[] memory ps = new IRecordRegistry.Pointer[](1);
        ps[0] = pointer(ID1, patient, LABS_CAT, HASH1);

        vm.expectRevert(notProvider(stranger));
        batchAs(stranger, ps);

        grantAs(patient, researcher, LABS);
        vm.expectRevert(notProvider(researcher));
        batchAs(researcher, ps);

        vm.prank(governor);
        participants.revokeCredential(hospitalA);
        vm.expectRevert(notProvider(hospitalA));
        batchAs(hospitalA, ps);

        assertNotStored(ID1);
    }

    function test_anchorBatch_revertsNotProviderExpired() public {
        IRecordRegistry.Pointer[] memory ps = new IRecordRegistry.Pointer[](1);
        ps[0] = pointer(ID1, patient, LABS_CAT, HASH1);
        vm.warp(participants.credentialOf(hospitalA).expiresAt);
        vm.expectRevert(notProvider(hospitalA));
        batchAs(hospitalA, ps);
    }

    function test_anchorBatch_revertsNoRelationshipWithoutGrant() public {
        IRecordRegistry.Pointer[] memory ps = new IRecordRegistry.Pointer[](1);
        ps[0] = pointer(ID1, patient, LABS_CAT, HASH1);
        vm.expectRevert(noRelationship(hospitalB, patient, LABS_CAT));
        batchAs(hospitalB, ps);
    }

    function test_anchorBatch_revertsNoRelationshipAfterPatientSwitch() public {
        // The readable mask must be re-read when the patient changes: patient grants notes,
        // patient2 does not.
        vm.expectRevert(noRelationship(hospitalA, patient2, NOTES_CAT));
        batchAs(
            hospitalA,
            batchOf(
                pointer(ID1, patient, NOTES_CAT, HASH1), pointer(ID2, patient2, NOTES_CAT, HASH2)
            )
        );
        assertNotStored(ID1);

        // ... and when it switches back.
        vm.expectRevert(noRelationship(hospitalA, stranger, LABS_CAT));
        batchAs(
            hospitalA,
            batchOf(
                pointer(ID1, patient, LABS_CAT, HASH1),
                pointer(idOf(hospitalA, patient2, HASH2), patient2, LABS_CAT, HASH2),
                pointer(ID3, stranger, LABS_CAT, HASH3)
            )
        );
        assertNotStored(ID1);
        assertNotStored(idOf(hospitalA, patient2, HASH2));
    }

    function test_anchorBatch_revertsNoRelationshipUngrantedCategorySamePatient() public {
        vm.expectRevert(noRelationship(hospitalA, patient2, NOTES_CAT));
        batchAs(
            hospitalA,
            batchOf(
                pointer(idOf(hospitalA, patient2, HASH1), patient2, LABS_CAT, HASH1),
                pointer(ID2, patient2, NOTES_CAT, HASH2)
            )
        );
        assertNotStored(idOf(hospitalA, patient2, HASH1));
    }

    function test_anchorBatch_revertsNoRelationshipRevokedGrant() public {
        vm.prank(patient2);
        consent.revoke(patient2, hospitalA);
        vm.expectRevert(noRelationship(hospitalA, patient2, LABS_CAT));
        batchAs(
            hospitalA,
            batchOf(pointer(ID1, patient, LABS_CAT, HASH1), pointer(ID2, patient2, LABS_CAT, HASH2))
        );
        assertNotStored(ID1);
    }

    function test_anchorBatch_revertsNoRelationshipExpiredGrant() public {
        vm.prank(patient);
        consent.grant(patient, hospitalB, LABS, TREATMENT, 0, now40() + 1 hours);
        vm.warp(block.timestamp + 1 hours);
        IRecordRegistry.Pointer[] memory ps = new IRecordRegistry.Pointer[](1);
        ps[0] = pointer(ID1, patient, LABS_CAT, HASH1);
        vm.expectRevert(noRelationship(hospitalB, patient, LABS_CAT));
        batchAs(hospitalB, ps);
    }

    function test_anchorBatch_breakGlass() public {
        vm.prank(hospitalB);
        consent.openEmergencyAccess(patient2, keccak256("stroke"), CAP);
        IRecordRegistry.Pointer[] memory ps = batchOf(
            pointer(idOf(hospitalB, patient2, HASH1), patient2, NOTES_CAT, HASH1),
            pointer(idOf(hospitalB, patient2, HASH2), patient2, 63, HASH2)
        );
        expectAnchored(ps[0], hospitalB, true);
        expectAnchored(ps[1], hospitalB, true);
        batchAs(hospitalB, ps);
        assertStored(ps[0], hospitalB);
        assertStored(ps[1], hospitalB);
        assertTrue(records.anchoredUnderBreakGlass(ps[0].recordId), "marked");
        assertTrue(records.anchoredUnderBreakGlass(ps[1].recordId), "marked");
    }

    function test_anchorBatch_grantThenBreakGlassSamePatient() public {
        // Same patient: the first pointer is covered by the grant, the next ones only by
        // break-glass, then a granted one again.
        vm.prank(hospitalA);
        consent.openEmergencyAccess(patient2, keccak256("stroke"), CAP);
        IRecordRegistry.Pointer[] memory ps = batchOf(
            pointer(idOf(hospitalA, patient2, HASH1), patient2, LABS_CAT, HASH1),
            pointer(idOf(hospitalA, patient2, HASH2), patient2, NOTES_CAT, HASH2),
            pointer(idOf(hospitalA, patient2, HASH3), patient2, LABS_CAT, HASH3)
        );
        for (uint256 i; i < ps.length; ++i) {
            expectAnchored(ps[i], hospitalA, i == 1);
        }
        batchAs(hospitalA, ps);
        for (uint256 i; i < ps.length; ++i) {
            assertStored(ps[i], hospitalA);
            assertEq(records.anchoredUnderBreakGlass(ps[i].recordId), i == 1, "mark");
        }
    }

    function test_anchorBatch_revertsFieldErrors() public {
        IRecordRegistry.Pointer memory good = pointer(ID1, patient, LABS_CAT, HASH1);

        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordZeroId.selector));
        batchAs(hospitalA, batchOf(good, pointer(bytes32(0), patient, LABS_CAT, HASH2)));

        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordZeroPatient.selector));
        batchAs(hospitalA, batchOf(good, pointer(ID2, address(0), LABS_CAT, HASH2)));

        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordInvalidCategory.selector, uint8(64))
        );
        batchAs(hospitalA, batchOf(good, pointer(ID2, patient3, 64, HASH2)));

        IRecordRegistry.Pointer memory badLocator = pointer(ID2, patient, LABS_CAT, HASH2);
        badLocator.locator = "";
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordInvalidLocator.selector, uint256(0))
        );
        batchAs(hospitalA, batchOf(good, badLocator));

        badLocator.locator = stringOfLength(257);
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordInvalidLocator.selector, uint256(257))
        );
        batchAs(hospitalA, batchOf(good, badLocator));

        assertNotStored(ID1);
        assertNotStored(ID2);
    }

    function test_anchorBatch_thenSingleAmendment() public {
        IRecordRegistry.Pointer[] memory ps = batchOf(
            pointer(ID1, patient, LABS_CAT, HASH1), pointer(ID3, patient, NOTES_CAT, HASH3)
        );
        batchAs(hospitalA, ps);
        // Batch-anchored records can be amended with {anchor}.
        expectSuperseded(ID1, ID2);
        anchorAs(hospitalA, amendment(ID2, patient, LABS_CAT, HASH2, ID1), HASH1);
        assertEq(supersededBy(ID1), ID2);
        assertTrue(records.verifyPointer(ID1, patient, hospitalA, LABS_CAT, HASH1));
    }

    // --------------------------------------------------------------- fuzz

    struct Query {
        bytes32 id;
        address patient;
        address holder;
        uint8 category;
        bytes32 hash;
    }

    function testFuzz_verifyPointer_trueExactlyForAnchoredFields(
        bytes32 id,
        uint8 category,
        bytes32 hash,
        Query memory q,
        uint8 mutate
    ) public {
        vm.assume(hash != bytes32(0));
        id = idOf(hospitalA, patient3, hash);
        category = uint8(bound(category, 0, 63));
        IRecordRegistry.Pointer memory p = pointer(id, patient3, category, hash);
        expectAnchored(p, hospitalA);
        anchorAs(hospitalA, p);
        assertEq(commitment(id), records.commitmentOf(patient3, hospitalA, category, hash));

        // Query the anchored fields with a fuzzed subset of them replaced by fuzzed values
        // (patient and holder drawn also from the known actors, so near misses are exercised).
        address[4] memory people = [patient3, patient, hospitalB, q.patient];
        address[4] memory holders = [hospitalA, hospitalB, patient3, q.holder];
        if (mutate & 1 == 0) q.id = id;
        q.patient = mutate & 2 == 0 ? patient3 : people[uint160(q.patient) % 4];
        q.holder = mutate & 4 == 0 ? hospitalA : holders[uint160(q.holder) % 4];
        if (mutate & 8 == 0) q.category = category;
        if (mutate & 16 == 0) q.hash = hash;

        bool same = q.id == id && q.patient == patient3 && q.holder == hospitalA
            && q.category == category && q.hash == hash;
        assertEq(records.verifyPointer(q.id, q.patient, q.holder, q.category, q.hash), same);
        assertTrue(records.verifyPointer(id, patient3, hospitalA, category, hash));
    }

    function testFuzz_verifyPointer_anyPatient(address who, uint8 category, bytes32 hash) public {
        vm.assume(who != address(0) && who != hospitalA && who != address(vm));
        vm.assume(hash != bytes32(0));
        category = uint8(bound(category, 0, 63));
        grantAs(who, hospitalA, uint64(1) << category);

        bytes32 id = idOf(hospitalA, who, hash);
        IRecordRegistry.Pointer memory p = pointer(id, who, category, hash);
        expectAnchored(p, hospitalA);
        anchorAs(hospitalA, p);
        assertTrue(records.verifyPointer(id, who, hospitalA, category, hash));
        assertFalse(records.verifyPointer(id, who, hospitalB, category, hash));
        assertFalse(records.verifyPointer(id, who, hospitalA, category, bytes32(uint256(hash) ^ 1)));
        assertFalse(records.verifyPointer(id, who, hospitalA, category ^ 1, hash));
        assertFalse(records.verifyPointer(id, address(uint160(who) ^ 1), hospitalA, category, hash));
    }

    struct Second {
        bool otherHolder;
        bool otherPatient;
        uint8 category;
        bytes32 hash;
        uint16 locatorLen;
    }

    function testFuzz_anchor_secondAnchorOfSameIdReverts(
        bytes32 id,
        uint8 category,
        bytes32 hash,
        Second memory second
    ) public {
        vm.assume(hash != bytes32(0) && second.hash != bytes32(0));
        id = idOf(hospitalA, patient3, hash);
        category = uint8(bound(category, 0, 63));
        // Both providers may anchor any category of patient and patient3.
        grantAs(patient3, hospitalB, type(uint64).max);
        vm.prank(hospitalB);
        consent.openEmergencyAccess(patient, keccak256("er"), CAP);
        vm.prank(hospitalA);
        consent.openEmergencyAccess(patient, keccak256("er"), CAP);

        anchorAs(hospitalA, pointer(id, patient3, category, hash));
        bytes32 before = commitment(id);

        // Any other valid fields, any live holder: the id is taken.
        address holder = second.otherHolder ? hospitalB : hospitalA;
        IRecordRegistry.Pointer memory p2 = pointer(
            id,
            second.otherPatient ? patient : patient3,
            uint8(bound(second.category, 0, 63)),
            second.hash
        );
        p2.locator = stringOfLength(bound(second.locatorLen, 1, 256));

        // The same holder, patient and content: the id exists; anything else: the id is not
        // the caller's to take.
        bytes32 expected = idOf(holder, p2.patient, p2.contentHash);
        bytes memory err = expected == id
            ? abi.encodeWithSelector(IRecordRegistry.RecordExists.selector, id)
            : abi.encodeWithSelector(IRecordRegistry.RecordIdNotBound.selector, id, expected);
        vm.expectRevert(err);
        anchorAs(holder, p2);

        IRecordRegistry.Pointer[] memory ps = new IRecordRegistry.Pointer[](1);
        ps[0] = p2;
        vm.expectRevert(err);
        batchAs(holder, ps);

        assertEq(commitment(id), before);
        assertEq(supersededBy(id), bytes32(0));
        assertTrue(records.verifyPointer(id, patient3, hospitalA, category, hash));
    }

    function testFuzz_anchor_invalidCategoryReverts(uint8 category) public {
        category = uint8(bound(category, 64, 255));
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordInvalidCategory.selector, category)
        );
        anchorAs(hospitalA, pointer(ID1, patient3, category, HASH1));
        assertNotStored(ID1);
    }

    function testFuzz_anchor_locatorLength(uint256 len) public {
        len = bound(len, 0, 600);
        IRecordRegistry.Pointer memory p = pointer(ID1, patient, LABS_CAT, HASH1);
        p.locator = stringOfLength(len);
        if (len == 0 || len > 256) {
            vm.expectRevert(
                abi.encodeWithSelector(IRecordRegistry.RecordInvalidLocator.selector, len)
            );
            anchorAs(hospitalA, p);
            assertNotStored(ID1);
        } else {
            expectAnchored(p, hospitalA);
            anchorAs(hospitalA, p);
            assertStored(p, hospitalA);
        }
    }

    function testFuzz_commitmentOf_matchesEncoding(
        address who,
        address holder,
        uint8 category,
        bytes32 hash
    ) public view {
        assertEq(
            records.commitmentOf(who, holder, category, hash),
            keccak256(abi.encode(who, holder, category, hash))
        );
    }

    function testFuzz_anchorBatch_lengthBounds(uint256 n) public {
        n = bound(n, 0, 260);
        IRecordRegistry.Pointer[] memory ps = new IRecordRegistry.Pointer[](n);
        for (uint256 i; i < n; ++i) {
            bytes32 h = keccak256(abi.encode("fz", i));
            ps[i] = pointer(idOf(hospitalA, patient, h), patient, LABS_CAT, h);
        }
        if (n == 0 || n > records.MAX_BATCH()) {
            vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordInvalidBatch.selector, n));
            batchAs(hospitalA, ps);
        } else {
            batchAs(hospitalA, ps);
            assertStored(ps[n - 1], hospitalA);
        }
    }
}

/// @notice Access-log anchors: a holder's gatekeeper log head, which only grows.
contract AccessLogAnchorTest is Base {
    function test_anchorAccessLog_storesAndEmits() public {
        vm.expectEmit(true, false, false, true, address(records));
        emit IRecordRegistry.AccessLogAnchored(hospitalA, keccak256("h1"), 3, now40());
        vm.prank(hospitalA);
        records.anchorAccessLog(hospitalA, keccak256("h1"), 3);
        IRecordRegistry.LogAnchor memory a = records.accessLogOf(hospitalA);
        assertEq(a.head, keccak256("h1"));
        assertEq(a.entries, 3);
        assertEq(a.anchoredAt, now40());
        vm.prank(hospitalA);
        records.anchorAccessLog(hospitalA, keccak256("h2"), 4);
        assertEq(records.accessLogOf(hospitalA).head, keccak256("h2"));
        assertEq(records.accessLogOf(hospitalB).entries, 0, "per holder");
    }

    function test_anchorAccessLog_revertsWhenNotGrowing() public {
        vm.prank(hospitalA);
        records.anchorAccessLog(hospitalA, keccak256("h1"), 3);
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordInvalidLogAnchor.selector, 3, 3)
        );
        vm.prank(hospitalA);
        records.anchorAccessLog(hospitalA, keccak256("h2"), 3);
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordInvalidLogAnchor.selector, 2, 3)
        );
        vm.prank(hospitalA);
        records.anchorAccessLog(hospitalA, keccak256("h2"), 2);
    }

    function test_anchorAccessLog_revertsOnZeroHeadOrEntries() public {
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordInvalidLogAnchor.selector, 1, 0)
        );
        vm.prank(hospitalA);
        records.anchorAccessLog(hospitalA, bytes32(0), 1);
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordInvalidLogAnchor.selector, 0, 0)
        );
        vm.prank(hospitalA);
        records.anchorAccessLog(hospitalA, keccak256("h"), 0);
    }

    function test_anchorAccessLog_revertsForNonProvider() public {
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordNotProvider.selector, stranger)
        );
        vm.prank(stranger);
        records.anchorAccessLog(stranger, keccak256("h"), 1);
    }

    function testFuzz_anchorAccessLog_neverShrinks(uint64 a, uint64 b) public {
        // The first anchor grows from zero, so at most MAX_LOG_GROWTH entries.
        a = uint64(bound(a, 1, records.MAX_LOG_GROWTH()));
        vm.prank(hospitalA);
        records.anchorAccessLog(hospitalA, keccak256("a"), a);
        bool grewTooMuch = b > a && b - a > records.MAX_LOG_GROWTH();
        vm.prank(hospitalA);
        if (b <= a) {
            vm.expectRevert(
                abi.encodeWithSelector(IRecordRegistry.RecordInvalidLogAnchor.selector, b, a)
            );
        } else if (grewTooMuch) {
            vm.expectRevert(
                abi.encodeWithSelector(IRecordRegistry.RecordLogGrowthTooLarge.selector, b, a)
            );
        }
        records.anchorAccessLog(hospitalA, keccak256("b"), b);
        assertEq(records.accessLogOf(hospitalA).entries, b <= a || grewTooMuch ? a : b);
    }
}
