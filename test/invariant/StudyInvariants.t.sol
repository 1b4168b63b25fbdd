// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Base} from "../Base.t.sol";
import {StudyHandler} from "./StudyHandler.sol";
import {StudyRegistry} from "../../contracts/StudyRegistry.sol";
import {IStudyRegistry} from "../../contracts/interfaces/IStudyRegistry.sol";
import {IParticipantRegistry} from "../../contracts/interfaces/IParticipantRegistry.sol";

/// @notice The research rules that must hold after any sequence of calls.
contract StudyInvariantsTest is Base {
    StudyRegistry internal studies;
    StudyHandler internal handler;

    function setUp() public override {
        super.setUp();
        studies = new StudyRegistry(governor, participants);
        address researcher2 = makeAddr("researcher2");
        vm.prank(governor);
        participants.issueCredential(
            researcher2, IParticipantRegistry.Role.Researcher, keccak256("irb 2"), now40() + YEAR
        );
        address[] memory rs = new address[](2);
        rs[0] = researcher;
        rs[1] = researcher2;
        // Study pseudonyms, by their keys: they opt in and withdraw only by signature.
        uint256[] memory ps = new uint256[](3);
        ps[0] = patientKey;
        ps[1] = 0xB0B;
        ps[2] = 0xCA501;
        address[] memory os = new address[](2);
        os[0] = stranger;
        os[1] = hospitalA;
        handler = new StudyHandler(studies, governor, rs, ps, os);
        targetContract(address(handler));
        bytes4[] memory actions = new bytes4[](7);
        actions[0] = StudyHandler.register.selector;
        actions[1] = StudyHandler.approve.selector;
        actions[2] = StudyHandler.close.selector;
        actions[3] = StudyHandler.optIn.selector;
        actions[4] = StudyHandler.withdraw.selector;
        actions[5] = StudyHandler.recordQuery.selector;
        actions[6] = StudyHandler.roll.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: actions}));
    }

    /// No budget is ever overspent, what is spent is exactly the sum of the recorded costs, and
    /// every stored receipt is the one the handler recorded.
    function invariant_budgetNeverOverspent() public view {
        assertEq(studies.studyCount(), handler.studyCount(), "study count");
        for (uint256 id = 1; id <= handler.studyCount(); ++id) {
            IStudyRegistry.Study memory s = studies.studyOf(id);
            (address r, IStudyRegistry.Status status, uint64 budget, uint64 spent) =
                handler.model(id);
            assertLe(s.spent, s.budget, "overspent");
            assertEq(s.spent, spent, "spent != model");
            assertEq(s.budget, budget, "budget != model");
            assertEq(s.researcher, r, "researcher != model");
            assertEq(uint8(s.status), uint8(status), "status != model");
            uint256 sum;
            for (uint256 k; k < 8; ++k) {
                bytes32 q = keccak256(abi.encode("query", k));
                IStudyRegistry.Query memory stored = studies.queryOf(id, q);
                IStudyRegistry.Query memory ghost = handler.receiptOf(id, q);
                assertEq(stored.cost, ghost.cost, "query cost != model");
                assertEq(stored.pinnedBlock, ghost.pinnedBlock, "pinned block != model");
                assertEq(stored.answerHash, ghost.answerHash, "answer hash != model");
                // A receipt is all there or not at all.
                assertEq(stored.cost == 0, stored.answerHash == bytes32(0), "partial receipt");
                sum += stored.cost;
            }
            assertEq(sum, s.spent, "spent != sum of query costs");
            assertEq(studies.queryOf(id, bytes32(0)).cost, 0, "receipt for a zero query hash");
        }
    }

    /// An opt-in counts exactly while the patient is opted in and the study is approved.
    function invariant_optInsMatchModel() public view {
        for (uint256 id = 0; id <= handler.studyCount() + 1; ++id) {
            (, IStudyRegistry.Status status,,) = handler.model(id);
            for (uint256 i; i < handler.patientCount(); ++i) {
                address p = handler.patients(i);
                bool stored = handler.optedIn(id, p);
                assertEq(studies.participationOf(id, p).optedIn, stored, "participation");
                assertEq(
                    studies.isOptedIn(id, p),
                    stored && status == IStudyRegistry.Status.Approved,
                    "isOptedIn"
                );
            }
        }
    }

    /// No call the rules forbid ever succeeded.
    function invariant_noForbiddenCallSucceeded() public view {
        assertEq(handler.unauthorizedSucceeded(), 0, "a forbidden call succeeded");
        assertEq(handler.validRefused(), 0, "an allowed recordQuery was refused");
    }
}
