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

    function setUp() public override {
        super.setUp();
        // patient: hospitalA may read labs and notes. patient2: hospitalA labs only.
        // patient3: hospitalA everything. hospitalB has no relationship with anyone.
        grantAs(patient, hospitalA, LABS | NOTES);
        grantAs(patient2, hospitalA, LABS);
        grantAs(patient3, hospitalA, type(uint64).max);
    }

    // ------------------------------------------------------------ helpers

    function anchorAs(address holder, IRecordRegistry.Pointer memory p) internal {
        vm.prank(holder);
        records.anchor(p);
    }

    function batchAs(address holder, IRecordRegistry.Pointer[] memory ps) internal {
        vm.prank(holder);
        records.anchorBatch(ps);
    }

    function amendment(address holder, address p, uint8 category, bytes32 hash, bytes32 old)
        internal
        pure
        returns (IRecordRegistry.Pointer memory ptr)
    {
        ptr = pointer(holder, p, category, hash);
        ptr.supersedes = old;
    }

    function expectAnchored(IRecordRegistry.Pointer memory p, address holder) internal {
        expectAnchored(p, holder, false);
    }

    /// @dev `breakGlass`: the holder has no live grant of the pointer's patient.
    function expectAnchored(IRecordRegistry.Pointer memory p, address holder, bool breakGlass)
        internal
    {
        vm.expectEmit(true, true, true, true, address(records));
        emit IRecordRegistry.PointerAnchored(p.recordId, p.patient, holder, p.commitment, p.locator);
        if (breakGlass) {
            vm.expectEmit(true, true, true, true, address(records));
            emit IRecordRegistry.PointerAnchoredUnderBreakGlass(p.recordId, p.patient, holder);
        }
    }

    function expectSuperseded(bytes32 oldId, bytes32 newId) internal {
        vm.expectEmit(true, true, true, true, address(records));
        emit IRecordRegistry.PointerSuperseded(oldId, newId);
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

    function assertStored(IRecordRegistry.Pointer memory p) internal view {
        assertEq(commitment(p.recordId), p.commitment, "commitment");
    }

    function noRelationship(address holder, address p) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IRecordRegistry.RecordNoRelationship.selector, holder, p);
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

    function openBreakGlass(address provider, address p) internal {
        vm.prank(provider);
        consent.openEmergencyAccess(p, keccak256("unconscious in ER"), CAP);
    }

    /// @dev Whether `data` holds `word` at any 32-byte aligned offset.
    function containsWord(bytes memory data, bytes32 word) internal pure returns (bool) {
        for (uint256 i; i + 32 <= data.length; i += 32) {
            bytes32 w;
            assembly ("memory-safe") {
                w := mload(add(add(data, 32), i))
            }
            if (w == word) return true;
        }
        return false;
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

    // ------------------------------------------------------- id formula

    /// The record id formula, pinned: keccak256(abi.encode(holder, patient, commitment)). The
    /// same constant is pinned in medrec-protocol's records module, so both ends agree.
    function test_recordIdOf_isKeccakOfHolderPatientCommitment() public view {
        assertEq(
            records.recordIdOf(address(0x11), address(0x22), bytes32(uint256(0x33))),
            keccak256(abi.encode(address(0x11), address(0x22), bytes32(uint256(0x33))))
        );
        bytes32 c = recordCommitment(patient, hospitalA, LABS_CAT, HASH1, saltOf(LABS_CAT, HASH1));
        assertEq(
            records.recordIdOf(hospitalA, patient, c),
            pointer(hospitalA, patient, LABS_CAT, HASH1).recordId
        );
    }

    function testFuzz_recordIdOf_matchesEncoding(address holder, address who, bytes32 c)
        public
        view
    {
        assertEq(records.recordIdOf(holder, who, c), keccak256(abi.encode(holder, who, c)));
    }

    function test_pointerOf_unknownIsZero() public view {
        assertNotStored(pointer(hospitalA, patient, LABS_CAT, HASH1).recordId);
        assertNotStored(bytes32(0));
    }

    // ------------------------------------------------------------- anchor

    function test_anchor_emitsAndStores() public {
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, HASH1);
        expectAnchored(p, hospitalA);
        anchorAs(hospitalA, p);
        assertStored(p);
        assertEq(supersededBy(p.recordId), bytes32(0));
        assertFalse(records.anchoredUnderBreakGlass(p.recordId));
    }

    /// The attack (issue 16): a consortium member reads a patient's record categories and
    /// content hashes from PointerAnchored and confirms a guessed document by its hash. The
    /// event now carries the record id, patient, holder, commitment and locator only: neither
    /// the category nor the content hash appears in its topics or data, and the one slot stored
    /// is the commitment. Before the change the event had both fields in its data.
    function test_anchor_eventAndStorageCarryNoCategoryOrContentHash() public {
        uint8 category = 42;
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient3, category, HASH1);
        vm.recordLogs();
        vm.record();
        anchorAs(hospitalA, p);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "PointerAnchored only");
        Vm.Log memory l = logs[0];
        assertEq(l.topics.length, 4);
        assertEq(l.topics[0], keccak256("PointerAnchored(bytes32,address,address,bytes32,string)"));
        assertEq(l.topics[1], p.recordId);
        assertEq(l.topics[2], bytes32(uint256(uint160(patient3))));
        assertEq(l.topics[3], bytes32(uint256(uint160(hospitalA))));
        (bytes32 c, string memory locator) = abi.decode(l.data, (bytes32, string));
        assertEq(c, p.commitment);
        assertEq(locator, p.locator);
        // commitment word, offset word, length word, the locator's words: nothing else.
        assertEq(l.data.length, 3 * 32 + ((bytes(p.locator).length + 31) / 32) * 32);
        assertFalse(containsWord(l.data, HASH1), "content hash in the event");
        assertFalse(containsWord(l.data, bytes32(uint256(category))), "category in the event");
        assertFalse(containsWord(l.data, saltOf(category, HASH1)), "salt in the event");
        // Storage: the commitment, in one slot written by the anchor.
        (, bytes32[] memory writes) = vm.accesses(address(records));
        assertEq(writes.length, 1, "one slot written");
        bytes32 stored = vm.load(address(records), writes[0]);
        assertEq(stored, p.commitment);
        assertNotEq(stored, HASH1);
    }

    /// The commitment is salted: the same record (patient, holder, category, content) under two
    /// salts gives unrelated commitments, so a guess without the salt confirms nothing.
    function test_anchor_commitmentHidesAGuess() public {
        bytes32 salted =
            recordCommitment(patient, hospitalA, LABS_CAT, HASH1, saltOf(LABS_CAT, HASH1));
        assertNotEq(salted, recordCommitment(patient, hospitalA, LABS_CAT, HASH1, bytes32(0)));
        assertNotEq(salted, keccak256(abi.encode(patient, hospitalA, LABS_CAT, HASH1)));
        assertNotEq(salted, HASH1);
    }

    function test_anchor_severalRecordsSamePatient() public {
        anchorAs(hospitalA, pointer(hospitalA, patient, LABS_CAT, HASH1));
        anchorAs(hospitalA, pointer(hospitalA, patient, LABS_CAT, HASH2));
        anchorAs(hospitalA, pointer(hospitalA, patient, NOTES_CAT, HASH3));
        assertStored(pointer(hospitalA, patient, NOTES_CAT, HASH3));
    }

    function test_anchor_revertsZeroId() public {
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, HASH1);
        p.recordId = bytes32(0);
        vm.expectRevert(IRecordRegistry.RecordZeroId.selector);
        anchorAs(hospitalA, p);
    }

    function test_anchor_revertsZeroPatient() public {
        IRecordRegistry.Pointer memory p = pointer(hospitalA, address(0), LABS_CAT, HASH1);
        vm.expectRevert(IRecordRegistry.RecordZeroPatient.selector);
        anchorAs(hospitalA, p);
    }

    function test_anchor_revertsZeroCommitment() public {
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, HASH1);
        p.commitment = bytes32(0);
        p.recordId = keccak256(abi.encode(hospitalA, patient, bytes32(0)));
        vm.expectRevert(IRecordRegistry.RecordZeroCommitment.selector);
        anchorAs(hospitalA, p);
    }

    function test_anchor_revertsEmptyLocator() public {
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, HASH1);
        p.locator = "";
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordInvalidLocator.selector, uint256(0))
        );
        anchorAs(hospitalA, p);
    }

    function test_anchor_revertsLocatorTooLong() public {
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, HASH1);
        p.locator = stringOfLength(257);
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordInvalidLocator.selector, uint256(257))
        );
        anchorAs(hospitalA, p);
    }

    function test_anchor_locatorOfMaxLengthSucceeds() public {
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, HASH1);
        p.locator = stringOfLength(256);
        anchorAs(hospitalA, p);
        assertStored(p);
    }

    function test_anchor_revertsExists() public {
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, HASH1);
        anchorAs(hospitalA, p);
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordExists.selector, p.recordId));
        anchorAs(hospitalA, p);
    }

    /// Another holder cannot take a record's id: the id names its holder.
    function test_anchor_revertsIdOfAnotherHolder() public {
        grantAs(patient, hospitalB, LABS);
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, HASH1);
        bytes32 expected = keccak256(abi.encode(hospitalB, patient, p.commitment));
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordIdNotBound.selector, p.recordId, expected)
        );
        anchorAs(hospitalB, p);
    }

    /// An id that is not keccak(holder, patient, commitment) of its own fields is refused.
    function test_anchor_revertsIdNotDerivedFromCommitment() public {
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, HASH1);
        bytes32 expected = p.recordId;
        p.recordId = keccak256("chosen");
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordIdNotBound.selector, p.recordId, expected)
        );
        anchorAs(hospitalA, p);
    }

    function test_anchor_revertsNotProviderStranger() public {
        vm.expectRevert(notProvider(stranger));
        anchorAs(stranger, pointer(stranger, patient, LABS_CAT, HASH1));
    }

    function test_anchor_revertsNotProviderPatient() public {
        vm.expectRevert(notProvider(patient));
        anchorAs(patient, pointer(patient, patient, LABS_CAT, HASH1));
    }

    function test_anchor_revertsNotProviderRevoked() public {
        vm.prank(governor);
        participants.revokeCredential(hospitalA);
        vm.expectRevert(notProvider(hospitalA));
        anchorAs(hospitalA, pointer(hospitalA, patient, LABS_CAT, HASH1));
    }

    /// The attack: a provider with no relationship with the patient anchors a record for them.
    function test_anchor_revertsNoRelationshipWithoutGrant() public {
        vm.expectRevert(noRelationship(hospitalB, patient));
        anchorAs(hospitalB, pointer(hospitalB, patient, LABS_CAT, HASH1));
    }

    function test_anchor_revertsNoRelationshipGrantExpired() public {
        vm.prank(patient2);
        consent.grant(patient2, hospitalB, LABS, TREATMENT, 0, now40() + 1 days);
        anchorAs(hospitalB, pointer(hospitalB, patient2, LABS_CAT, HASH1));
        vm.warp(block.timestamp + 1 days + 1);
        vm.expectRevert(noRelationship(hospitalB, patient2));
        anchorAs(hospitalB, pointer(hospitalB, patient2, LABS_CAT, HASH2));
    }

    function test_anchor_revertsNoRelationshipGrantRevoked() public {
        vm.prank(patient);
        consent.revoke(patient, hospitalA);
        vm.expectRevert(noRelationship(hospitalA, patient));
        anchorAs(hospitalA, pointer(hospitalA, patient, LABS_CAT, HASH1));
    }

    function test_anchor_revertsNoRelationshipGrantNotStarted() public {
        vm.prank(patient2);
        consent.grant(patient2, hospitalB, LABS, TREATMENT, now40() + 1 days, now40() + YEAR);
        vm.expectRevert(noRelationship(hospitalB, patient2));
        anchorAs(hospitalB, pointer(hospitalB, patient2, LABS_CAT, HASH1));
    }

    /// The trade-off of hidden categories: any live grant is a relationship, whatever category
    /// the committed record has; it is not marked as break-glass.
    function test_anchor_anyLiveGrantIsARelationship() public {
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient2, NOTES_CAT, HASH3);
        expectAnchored(p, hospitalA, false);
        anchorAs(hospitalA, p);
        assertFalse(records.anchoredUnderBreakGlass(p.recordId));
    }

    function test_anchor_breakGlassGivesRelationshipAndIsMarked() public {
        openBreakGlass(hospitalB, patient);
        IRecordRegistry.Pointer memory p = pointer(hospitalB, patient, 42, HASH1);
        expectAnchored(p, hospitalB, true);
        anchorAs(hospitalB, p);
        assertTrue(records.anchoredUnderBreakGlass(p.recordId));
    }

    function test_anchor_breakGlassClosedRevertsNoRelationship() public {
        openBreakGlass(hospitalB, patient);
        vm.warp(block.timestamp + CAP);
        vm.expectRevert(noRelationship(hospitalB, patient));
        anchorAs(hospitalB, pointer(hospitalB, patient, LABS_CAT, HASH1));
    }

    // ---------------------------------------------------------- amendment

    /// An amendment proves the old record by its stored commitment and the id formula: no
    /// opening in calldata.
    function test_anchor_amendmentSupersedes() public {
        IRecordRegistry.Pointer memory v1 = pointer(hospitalA, patient, LABS_CAT, HASH1);
        anchorAs(hospitalA, v1);
        IRecordRegistry.Pointer memory v2 =
            amendment(hospitalA, patient, LABS_CAT, HASH2, v1.recordId);
        expectAnchored(v2, hospitalA);
        expectSuperseded(v1.recordId, v2.recordId);
        anchorAs(hospitalA, v2);
        assertEq(supersededBy(v1.recordId), v2.recordId);
        assertEq(supersededBy(v2.recordId), bytes32(0));
        assertStored(v1);
        assertStored(v2);
    }

    function test_anchor_amendmentChain() public {
        IRecordRegistry.Pointer memory v1 = pointer(hospitalA, patient, LABS_CAT, HASH1);
        anchorAs(hospitalA, v1);
        IRecordRegistry.Pointer memory v2 =
            amendment(hospitalA, patient, LABS_CAT, HASH2, v1.recordId);
        anchorAs(hospitalA, v2);
        IRecordRegistry.Pointer memory v3 =
            amendment(hospitalA, patient, LABS_CAT, HASH3, v2.recordId);
        anchorAs(hospitalA, v3);
        assertEq(supersededBy(v2.recordId), v3.recordId);
    }

    function test_anchor_revertsSupersedeUnknown() public {
        bytes32 unknown = keccak256("unknown");
        vm.expectRevert(invalidSupersede(unknown));
        anchorAs(hospitalA, amendment(hospitalA, patient, LABS_CAT, HASH2, unknown));
    }

    /// The attack: a holder supersedes another holder's record of the same patient.
    function test_anchor_revertsSupersedeOtherHolder() public {
        grantAs(patient, hospitalB, LABS);
        IRecordRegistry.Pointer memory a = pointer(hospitalA, patient, LABS_CAT, HASH1);
        anchorAs(hospitalA, a);
        vm.expectRevert(invalidSupersede(a.recordId));
        anchorAs(hospitalB, amendment(hospitalB, patient, LABS_CAT, HASH2, a.recordId));
        assertEq(supersededBy(a.recordId), bytes32(0));
    }

    /// A holder's record of one patient cannot be superseded by a record of another.
    function test_anchor_revertsSupersedeOtherPatient() public {
        IRecordRegistry.Pointer memory a = pointer(hospitalA, patient, LABS_CAT, HASH1);
        anchorAs(hospitalA, a);
        vm.expectRevert(invalidSupersede(a.recordId));
        anchorAs(hospitalA, amendment(hospitalA, patient2, LABS_CAT, HASH2, a.recordId));
    }

    function test_anchor_revertsSupersedeItself() public {
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, HASH1);
        p.supersedes = p.recordId;
        vm.expectRevert(invalidSupersede(p.recordId));
        anchorAs(hospitalA, p);
    }

    function test_anchor_revertsSupersedeAlreadySuperseded() public {
        IRecordRegistry.Pointer memory v1 = pointer(hospitalA, patient, LABS_CAT, HASH1);
        anchorAs(hospitalA, v1);
        anchorAs(hospitalA, amendment(hospitalA, patient, LABS_CAT, HASH2, v1.recordId));
        vm.expectRevert(invalidSupersede(v1.recordId));
        anchorAs(hospitalA, amendment(hospitalA, patient, LABS_CAT, HASH3, v1.recordId));
    }

    function test_anchor_amendmentNeedsRelationship() public {
        IRecordRegistry.Pointer memory v1 = pointer(hospitalA, patient, LABS_CAT, HASH1);
        anchorAs(hospitalA, v1);
        vm.prank(patient);
        consent.revoke(patient, hospitalA);
        vm.expectRevert(noRelationship(hospitalA, patient));
        anchorAs(hospitalA, amendment(hospitalA, patient, LABS_CAT, HASH2, v1.recordId));
    }

    // ------------------------------------------------------------ batch

    function test_anchorBatch_interleavedPatients() public {
        IRecordRegistry.Pointer[] memory ps = new IRecordRegistry.Pointer[](4);
        ps[0] = pointer(hospitalA, patient, LABS_CAT, HASH1);
        ps[1] = pointer(hospitalA, patient2, LABS_CAT, HASH1);
        ps[2] = pointer(hospitalA, patient, NOTES_CAT, HASH2);
        ps[3] = pointer(hospitalA, patient3, 63, HASH3);
        for (uint256 i; i < 4; ++i) {
            expectAnchored(ps[i], hospitalA);
        }
        batchAs(hospitalA, ps);
        for (uint256 i; i < 4; ++i) {
            assertStored(ps[i]);
        }
    }

    function test_anchorBatch_maxBatch() public {
        IRecordRegistry.Pointer[] memory ps = new IRecordRegistry.Pointer[](200);
        for (uint256 i; i < 200; ++i) {
            ps[i] = pointer(hospitalA, patient, LABS_CAT, keccak256(abi.encode(i)));
        }
        batchAs(hospitalA, ps);
        assertStored(ps[199]);
    }

    function test_anchorBatch_allOrNone() public {
        IRecordRegistry.Pointer memory good = pointer(hospitalA, patient, LABS_CAT, HASH1);
        IRecordRegistry.Pointer memory bad = pointer(hospitalA, patient, LABS_CAT, HASH2);
        bad.commitment = bytes32(0);
        vm.expectRevert(IRecordRegistry.RecordZeroCommitment.selector);
        batchAs(hospitalA, batchOf(good, bad));
        assertNotStored(good.recordId);
    }

    function test_anchorBatch_revertsDuplicateIdInBatch() public {
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, HASH1);
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordExists.selector, p.recordId));
        batchAs(hospitalA, batchOf(p, p));
    }

    function test_anchorBatch_revertsEmpty() public {
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordInvalidBatch.selector, uint256(0))
        );
        batchAs(hospitalA, new IRecordRegistry.Pointer[](0));
    }

    function test_anchorBatch_revertsAboveMax() public {
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordInvalidBatch.selector, uint256(201))
        );
        batchAs(hospitalA, new IRecordRegistry.Pointer[](201));
    }

    function test_anchorBatch_revertsSupersedes() public {
        IRecordRegistry.Pointer memory v1 = pointer(hospitalA, patient, LABS_CAT, HASH1);
        anchorAs(hospitalA, v1);
        IRecordRegistry.Pointer memory v2 =
            amendment(hospitalA, patient, LABS_CAT, HASH2, v1.recordId);
        vm.expectRevert(invalidSupersede(v1.recordId));
        batchAs(hospitalA, batchOf(pointer(hospitalA, patient, LABS_CAT, HASH3), v2));
    }

    function test_anchorBatch_revertsNotProvider() public {
        vm.expectRevert(notProvider(stranger));
        batchAs(
            stranger,
            batchOf(
                pointer(stranger, patient, LABS_CAT, HASH1),
                pointer(stranger, patient, LABS_CAT, HASH2)
            )
        );
    }

    /// The relationship is asked again when the patient changes: a patient with no
    /// relationship after one with a grant is refused.
    function test_anchorBatch_revertsNoRelationshipAfterPatientSwitch() public {
        grantAs(patient, hospitalB, LABS);
        vm.expectRevert(noRelationship(hospitalB, patient2));
        batchAs(
            hospitalB,
            batchOf(
                pointer(hospitalB, patient, LABS_CAT, HASH1),
                pointer(hospitalB, patient2, LABS_CAT, HASH2)
            )
        );
    }

    function test_anchorBatch_grantThenBreakGlass() public {
        grantAs(patient, hospitalB, LABS);
        openBreakGlass(hospitalB, patient2);
        IRecordRegistry.Pointer memory a = pointer(hospitalB, patient, LABS_CAT, HASH1);
        IRecordRegistry.Pointer memory b = pointer(hospitalB, patient2, NOTES_CAT, HASH2);
        expectAnchored(a, hospitalB, false);
        expectAnchored(b, hospitalB, true);
        batchAs(hospitalB, batchOf(a, b));
        assertFalse(records.anchoredUnderBreakGlass(a.recordId));
        assertTrue(records.anchoredUnderBreakGlass(b.recordId));
    }

    // ------------------------------------------------------------ erasure

    function test_erase_byTheHolderMarksAndEmitsNothingElse() public {
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, HASH1);
        anchorAs(hospitalA, p);
        vm.recordLogs();
        vm.prank(hospitalA);
        records.erase(p.recordId, patient);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1);
        assertEq(logs[0].topics.length, 2);
        assertEq(logs[0].topics[0], IRecordRegistry.PointerErased.selector);
        assertEq(logs[0].topics[1], p.recordId);
        assertEq(logs[0].data.length, 0, "nothing but the id");
        assertTrue(records.erased(p.recordId));
        // The pointer stays: its id is never anchored again.
        assertStored(p);
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordExists.selector, p.recordId));
        anchorAs(hospitalA, p);
    }

    /// The attack: another holder, the patient or a stranger erases a record they do not hold.
    function test_erase_revertsForAnyoneButTheHolder() public {
        grantAs(patient, hospitalB, LABS);
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, HASH1);
        anchorAs(hospitalA, p);
        address[4] memory who = [hospitalB, patient, stranger, governor];
        for (uint256 i; i < who.length; ++i) {
            vm.expectRevert(
                abi.encodeWithSelector(IRecordRegistry.RecordNotHolder.selector, p.recordId)
            );
            vm.prank(who[i]);
            records.erase(p.recordId, patient);
        }
        // Nor the holder naming another patient, nor an unknown record.
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordNotHolder.selector, p.recordId)
        );
        vm.prank(hospitalA);
        records.erase(p.recordId, patient2);
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordNotHolder.selector, keccak256("x"))
        );
        vm.prank(hospitalA);
        records.erase(keccak256("x"), patient);
        assertFalse(records.erased(p.recordId));
    }

    function test_erase_twiceReverts() public {
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, HASH1);
        anchorAs(hospitalA, p);
        vm.prank(hospitalA);
        records.erase(p.recordId, patient);
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordErased.selector, p.recordId));
        vm.prank(hospitalA);
        records.erase(p.recordId, patient);
    }

    function test_erase_thenAmendReverts() public {
        IRecordRegistry.Pointer memory v1 = pointer(hospitalA, patient, LABS_CAT, HASH1);
        anchorAs(hospitalA, v1);
        vm.prank(hospitalA);
        records.erase(v1.recordId, patient);
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordErased.selector, v1.recordId));
        anchorAs(hospitalA, amendment(hospitalA, patient, LABS_CAT, HASH2, v1.recordId));
    }

    /// A holder whose credential was revoked can still erase what it anchored.
    function test_erase_needsNoCredential() public {
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, HASH1);
        anchorAs(hospitalA, p);
        vm.prank(governor);
        participants.revokeCredential(hospitalA);
        vm.prank(hospitalA);
        records.erase(p.recordId, patient);
        assertTrue(records.erased(p.recordId));
    }

    // ------------------------------------------------------------- fuzz

    /// Any record of any category and content anchors under its commitment; a second anchor
    /// of its id reverts; no other id is touched.
    function testFuzz_anchor_storesTheCommitment(uint8 category, bytes32 hash, bytes32 salt)
        public
    {
        category = uint8(bound(category, 0, 63));
        bytes32 c = recordCommitment(patient3, hospitalA, category, hash, salt);
        vm.assume(c != bytes32(0));
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient3, category, hash);
        p.commitment = c;
        p.recordId = records.recordIdOf(hospitalA, patient3, c);
        anchorAs(hospitalA, p);
        assertEq(commitment(p.recordId), c);
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordExists.selector, p.recordId));
        anchorAs(hospitalA, p);
    }

    function testFuzz_anchor_locatorLength(uint256 len) public {
        len = bound(len, 0, 400);
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, HASH1);
        p.locator = stringOfLength(len);
        if (len == 0 || len > 256) {
            vm.expectRevert(
                abi.encodeWithSelector(IRecordRegistry.RecordInvalidLocator.selector, len)
            );
        }
        anchorAs(hospitalA, p);
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
