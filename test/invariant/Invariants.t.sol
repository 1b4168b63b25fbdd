// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Base} from "../Base.t.sol";
import {Handler} from "./Handler.sol";
import {IConsentRegistry} from "../../contracts/interfaces/IConsentRegistry.sol";
import {IParticipantRegistry} from "../../contracts/interfaces/IParticipantRegistry.sol";

/// @notice The domain rules that must hold after any sequence of calls.
contract InvariantsTest is Base {
    Handler internal handler;

    function setUp() public override {
        super.setUp();
        address[] memory ps = new address[](3);
        ps[0] = patient;
        ps[1] = makeAddr("patient2");
        ps[2] = makeAddr("patient3");
        address[] memory provs = new address[](2);
        provs[0] = hospitalA;
        provs[1] = hospitalB;
        address[] memory others = new address[](3);
        others[0] = guardian;
        others[1] = stranger;
        others[2] = researcher;
        // Credentials that outlive any warp the handler makes.
        vm.startPrank(governor);
        participants.issueCredential(
            hospitalA, IParticipantRegistry.Role.Provider, keccak256("A"), type(uint40).max
        );
        participants.issueCredential(
            hospitalB, IParticipantRegistry.Role.Provider, keccak256("B"), type(uint40).max
        );
        vm.stopPrank();
        handler = new Handler(consent, records, governor, ps, provs, others);
        targetContract(address(handler));
    }

    /// No access after revocation or expiry, and none that the model does not grant: what a
    /// provider may read is exactly its live grant, or everything under live break-glass.
    function invariant_accessMatchesLiveGrantsOnly() public view {
        for (uint256 i; i < handler.patientCount(); ++i) {
            address p = handler.patients(i);
            for (uint256 j; j < handler.providerCount(); ++j) {
                address g = handler.providers(j);
                (uint64 cats, uint40 nb, uint40 exp) = handler.grants(p, g);
                uint64 expected =
                    (block.timestamp >= nb && block.timestamp < exp) ? cats : uint64(0);
                (uint40 openedAt, uint40 deadline,) = handler.emergencies(p, g);
                if (openedAt != 0 && block.timestamp < deadline) expected = type(uint64).max;
                assertEq(consent.readableCategories(g, p), expected, "readable != model");
            }
        }
    }

    /// Only the patient or a guardian in scope changes a patient's grants: the stored grant is
    /// the model's, and no forbidden call ever succeeded.
    function invariant_onlyPatientOrGuardianChangesGrants() public view {
        assertEq(handler.unauthorizedSucceeded(), 0, "a forbidden call succeeded");
        for (uint256 i; i < handler.patientCount(); ++i) {
            address p = handler.patients(i);
            for (uint256 j; j < handler.providerCount(); ++j) {
                address g = handler.providers(j);
                (uint64 cats,, uint40 exp) = handler.grants(p, g);
                IConsentRegistry.Grant memory onChain = consent.grantOf(p, g);
                assertEq(onChain.categories, cats, "categories");
                assertEq(onChain.expiresAt, exp, "expiresAt");
            }
        }
    }

    /// A pointer's commitment never changes once anchored, and its id stays bound to its
    /// holder, patient and commitment.
    function invariant_pointersNeverChange() public view {
        for (uint256 i; i < handler.recordCount(); ++i) {
            bytes32 id = handler.recordIds(i);
            (address p, address holder, uint8 cat, bytes32 h, bytes32 salt) = handler.pointers(id);
            bytes32 c = keccak256(abi.encode(p, holder, cat, h, salt));
            (bytes32 stored,) = records.pointerOf(id);
            assertEq(stored, c, "pointer changed");
            assertEq(id, records.recordIdOf(holder, p, c), "id not bound");
        }
    }

    /// Break-glass never outlives its cap: an open access ends no later than its opening plus
    /// the cap in force when it was opened, and the chain agrees with the model.
    function invariant_breakGlassWithinCap() public view {
        for (uint256 i; i < handler.patientCount(); ++i) {
            address p = handler.patients(i);
            for (uint256 j; j < handler.providerCount(); ++j) {
                address g = handler.providers(j);
                IConsentRegistry.EmergencyAccess memory e = consent.emergencyAccessOf(p, g);
                (uint40 openedAt, uint40 deadline, uint40 capAtOpen) = handler.emergencies(p, g);
                assertEq(e.openedAt, openedAt, "openedAt");
                assertEq(e.expiresAt, deadline, "expiresAt");
                assertLe(e.expiresAt, uint256(e.openedAt) + capAtOpen, "past cap");
            }
        }
    }
}
