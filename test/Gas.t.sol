// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Base} from "./Base.t.sol";
import {IRecordRegistry} from "../contracts/interfaces/IRecordRegistry.sol";
import {StudyRegistry} from "../contracts/StudyRegistry.sol";

/// @notice Gas per operation, written to snapshots/GasTest.json by `forge snapshot` and checked
/// by `make gas-check`. Figures are the execution gas of the call (no 21,000 intrinsic, no
/// calldata); `make bench-gas` measures whole transactions on anvil. The ceilings below are the
/// project's targets: a regression past them fails the suite.
contract GasTest is Base {
    StudyRegistry internal studies;

    function setUp() public override {
        super.setUp();
        studies = new StudyRegistry(governor, participants);
    }

    /// @dev Every account and slot cold, as at the start of a real transaction.
    function cool() internal {
        vm.cool(address(participants));
        vm.cool(address(consent));
        vm.cool(address(records));
        vm.cool(address(studies));
    }

    uint256 internal constant GRANT_TARGET = 55_000;
    uint256 internal constant REVOKE_TARGET = 30_000;
    uint256 internal constant ANCHOR_TARGET = 60_000;
    uint256 internal constant BATCH_PER_POINTER_TARGET = 30_000;

    function test_gas_grantNew() public {
        cool();
        vm.prank(patient);
        consent.grant(patient, hospitalA, LABS | NOTES, TREATMENT, 0, now40() + YEAR);
        uint256 used = vm.snapshotGasLastCall("grant (new)");
        assertLe(used, GRANT_TARGET);
    }

    function test_gas_grantReplace() public {
        grantAs(patient, hospitalA, LABS);
        cool();
        vm.prank(patient);
        consent.grant(patient, hospitalA, LABS | NOTES, TREATMENT, 0, now40() + YEAR);
        vm.snapshotGasLastCall("grant (replace)");
    }

    function test_gas_revoke() public {
        grantAs(patient, hospitalA, LABS);
        cool();
        vm.prank(patient);
        consent.revoke(patient, hospitalA);
        uint256 used = vm.snapshotGasLastCall("revoke");
        assertLe(used, REVOKE_TARGET);
    }

    function test_gas_grantBySig() public {
        uint40 exp = now40() + YEAR;
        uint256 deadline = block.timestamp + 1 hours;
        uint40 issuedAt = now40();
        bytes memory sig = sign(
            patientKey,
            grantStructHash(
                patient, hospitalA, LABS, TREATMENT, 0, exp, patient, 0, issuedAt, deadline
            )
        );
        cool();
        vm.prank(stranger);
        consent.grantBySig(
            patient, hospitalA, LABS, TREATMENT, 0, exp, patient, 0, issuedAt, deadline, sig
        );
        vm.snapshotGasLastCall("grantBySig (new)");
    }

    function test_gas_openEmergencyAccess() public {
        cool();
        vm.prank(hospitalB);
        consent.openEmergencyAccess(patient, keccak256("unconscious in ED"), 4 hours);
        vm.snapshotGasLastCall("openEmergencyAccess");
    }

    function test_gas_canRead() public {
        grantAs(patient, hospitalA, LABS);
        cool();
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
        vm.snapshotGasLastCall("canRead (view)");
    }

    function test_gas_anchorOne() public {
        grantAs(patient, hospitalA, LABS);
        IRecordRegistry.Pointer memory p = pointer(hospitalA, patient, LABS_CAT, keccak256("x"));
        cool();
        vm.prank(hospitalA);
        records.anchor(p);
        uint256 used = vm.snapshotGasLastCall("anchor (one pointer)");
        assertLe(used, ANCHOR_TARGET);
    }

    function test_gas_anchorBatch50OnePatient() public {
        grantAs(patient, hospitalA, LABS);
        IRecordRegistry.Pointer[] memory ps = new IRecordRegistry.Pointer[](50);
        for (uint256 i; i < 50; ++i) {
            ps[i] = pointer(hospitalA, patient, LABS_CAT, keccak256(abi.encode(i)));
        }
        cool();
        vm.prank(hospitalA);
        records.anchorBatch(ps);
        uint256 used = vm.snapshotGasLastCall("anchorBatch 50, one patient (total)");
        vm.snapshotValue("anchorBatch 50, one patient (per pointer)", used / 50);
        assertLe(used / 50, BATCH_PER_POINTER_TARGET);
    }

    function test_gas_anchorBatch50DistinctPatients() public {
        IRecordRegistry.Pointer[] memory ps = new IRecordRegistry.Pointer[](50);
        for (uint256 i; i < 50; ++i) {
            address p = address(uint160(0x1000 + i));
            grantAs(p, hospitalA, LABS);
            ps[i] = pointer(hospitalA, p, LABS_CAT, keccak256(abi.encode(i)));
        }
        cool();
        vm.prank(hospitalA);
        records.anchorBatch(ps);
        uint256 used = vm.snapshotGasLastCall("anchorBatch 50, 50 patients (total)");
        vm.snapshotValue("anchorBatch 50, 50 patients (per pointer)", used / 50);
        // One cold grant lookup per patient on top of the one-patient batch: over the target
        // (see BENCHMARKS.md); this bound only catches a regression. Since issue 14, about 700
        // more per pointer for the record id checked against its holder, and about 1,100 for the
        // holder's credential (validSince) looked up per patient run (hole 10a).
        assertLe(used / 50, 36_000);
    }

    function test_gas_anchorAccessLog() public {
        cool();
        vm.prank(hospitalA);
        records.anchorAccessLog(hospitalA, keccak256("head"), 100);
        vm.snapshotGasLastCall("anchorAccessLog");
    }

    /// @dev A study registered by `researcher` and approved by governance.
    function approvedStudy() internal returns (uint256 id) {
        vm.prank(researcher);
        id = studies.registerStudy(keccak256("protocol"), LABS | NOTES, 11, 1_000_000);
        vm.prank(governor);
        studies.approveStudy(id);
    }

    function test_gas_registerStudy() public {
        cool();
        vm.prank(researcher);
        studies.registerStudy(keccak256("protocol"), LABS | NOTES, 11, 1_000_000);
        vm.snapshotGasLastCall("registerStudy");
    }

    /// @dev A study pseudonym's signed opt-in with its 8 holder slots, relayed (issue 16: the
    /// only opt-in there is).
    function test_gas_optInBySig() public {
        uint256 id = approvedStudy();
        uint256 key = 0x5EED;
        address pseudonym = vm.addr(key);
        bytes memory tags = new bytes(studies.TAGS_LENGTH());
        for (uint256 i; i < tags.length; ++i) {
            tags[i] = bytes1(uint8(i * 31 + 7));
        }
        uint40 issuedAt = now40();
        uint256 deadline = block.timestamp + 1 hours;
        bytes32 structHash = keccak256(
            abi.encode(
                studies.OPT_IN_TYPEHASH(), id, pseudonym, keccak256(tags), 0, issuedAt, deadline
            )
        );
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(
            key, keccak256(abi.encodePacked("\x19\x01", studies.DOMAIN_SEPARATOR(), structHash))
        );
        bytes memory sig = abi.encodePacked(r, s, v);
        cool();
        vm.prank(stranger);
        studies.optInBySig(id, pseudonym, tags, 0, issuedAt, deadline, sig);
        vm.snapshotGasLastCall("optInBySig");
    }

    function test_gas_recordQuery() public {
        uint256 id = approvedStudy();
        vm.roll(100);
        cool();
        vm.prank(researcher);
        studies.recordQuery(id, keccak256("query"), 100_000, 99, keccak256("answer"));
        vm.snapshotGasLastCall("recordQuery");
    }
}
