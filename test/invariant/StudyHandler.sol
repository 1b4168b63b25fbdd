// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Test} from "forge-std/Test.sol";
import {StudyRegistry} from "../../contracts/StudyRegistry.sol";
import {IStudyRegistry} from "../../contracts/interfaces/IStudyRegistry.sol";

/// @notice Drives the study registry with random actors, costs and arguments, and keeps a model
/// of what the chain must hold. Calls that the rules forbid are attempted too: if one of them
/// succeeded, it is counted and an invariant fails.
contract StudyHandler is Test {
    StudyRegistry public immutable studies;
    address public immutable governor;

    address[] public researchers; // credentialed
    address[] public patients;
    address[] public others; // a stranger, a provider

    struct ModelStudy {
        address researcher;
        IStudyRegistry.Status status;
        uint64 budget;
        uint64 spent;
    }

    mapping(uint256 studyId => ModelStudy) public model;
    mapping(uint256 studyId => mapping(address patient => bool)) public optedIn;
    mapping(uint256 studyId => mapping(bytes32 queryHash => uint64 cost)) public costs;
    mapping(uint256 studyId => mapping(bytes32 queryHash => bool)) public answered;
    uint256 public studyCount;
    uint256 public queriesSubmitted;
    uint256 public unauthorizedSucceeded;

    constructor(
        StudyRegistry studies_,
        address governor_,
        address[] memory researchers_,
        address[] memory patients_,
        address[] memory others_
    ) {
        studies = studies_;
        governor = governor_;
        researchers = researchers_;
        patients = patients_;
        others = others_;
    }

    function patientCount() external view returns (uint256) {
        return patients.length;
    }

    /// @dev An existing study id most of the time, now and then 0 or one past the last.
    function _study(uint256 seed) internal view returns (uint256) {
        return seed % (studyCount + 2);
    }

    function _queryHash(uint256 seed) internal pure returns (bytes32) {
        return keccak256(abi.encode("query", seed % 8));
    }

    /// @dev The study's researcher most of the time, else another researcher or a stranger.
    function _caller(uint256 studyId, uint256 seed) internal view returns (address) {
        uint256 pick = seed % 4;
        if (pick < 2 && model[studyId].researcher != address(0)) return model[studyId].researcher;
        if (pick == 2) return researchers[seed % researchers.length];
        return others[seed % others.length];
    }

    // ------------------------------------------------------------------ actions

    function register(uint256 researcherSeed, uint64 budget) external {
        bool credentialed = researcherSeed % 5 != 0;
        address r = credentialed
            ? researchers[researcherSeed % researchers.length]
            : others[researcherSeed % others.length];
        budget = uint64(bound(budget, 1, 1_000_000));
        vm.prank(r);
        try studies.registerStudy(keccak256("protocol"), 1, 5, budget) returns (uint256 id) {
            if (!credentialed) unauthorizedSucceeded++;
            studyCount = id;
            model[id] = ModelStudy(r, IStudyRegistry.Status.Registered, budget, 0);
        } catch {}
    }

    function approve(uint256 studySeed, bool asGovernor) external {
        uint256 id = _study(studySeed);
        address caller = asGovernor ? governor : model[id].researcher;
        vm.prank(caller);
        try studies.approveStudy(id) {
            if (!asGovernor || model[id].status != IStudyRegistry.Status.Registered) {
                unauthorizedSucceeded++;
            }
            model[id].status = IStudyRegistry.Status.Approved;
        } catch {}
    }

    function close(uint256 studySeed, bool asGovernor) external {
        uint256 id = _study(studySeed);
        address caller = asGovernor ? governor : model[id].researcher;
        vm.prank(caller);
        try studies.closeStudy(id) {
            IStudyRegistry.Status s = model[id].status;
            if (
                !asGovernor
                    || (s != IStudyRegistry.Status.Registered
                        && s != IStudyRegistry.Status.Approved)
            ) unauthorizedSucceeded++;
            model[id].status = IStudyRegistry.Status.Closed;
        } catch {}
    }

    function optIn(uint256 studySeed, uint256 patientSeed) external {
        uint256 id = _study(studySeed);
        address p = patients[patientSeed % patients.length];
        vm.prank(p);
        try studies.optIn(id) {
            if (model[id].status != IStudyRegistry.Status.Approved || optedIn[id][p]) {
                unauthorizedSucceeded++;
            }
            optedIn[id][p] = true;
        } catch {}
    }

    function withdraw(uint256 studySeed, uint256 patientSeed) external {
        uint256 id = _study(studySeed);
        address p = patients[patientSeed % patients.length];
        vm.prank(p);
        try studies.withdraw(id) {
            if (!optedIn[id][p]) unauthorizedSucceeded++;
            optedIn[id][p] = false;
        } catch {}
    }

    function submitQuery(uint256 studySeed, uint256 callerSeed, uint256 querySeed, uint64 cost)
        external
    {
        uint256 id = _study(studySeed);
        address caller = _caller(id, callerSeed);
        bytes32 q = _queryHash(querySeed);
        // Mostly up to a quarter of the budget; now and then zero, all that is left, or one more.
        ModelStudy memory m = model[id];
        uint256 pick = cost % 10;
        if (pick == 0) cost = 0;
        else if (pick == 1) cost = m.budget - m.spent;
        else if (pick == 2) cost = m.budget - m.spent + 1;
        else cost = uint64(bound(cost, 1, 1 + m.budget / 4));
        vm.prank(caller);
        try studies.submitQuery(id, q, cost, uint64(block.number)) {
            if (
                caller != m.researcher || m.status != IStudyRegistry.Status.Approved || cost == 0
                    || costs[id][q] != 0 || uint256(m.spent) + cost > m.budget
            ) unauthorizedSucceeded++;
            model[id].spent = m.spent + cost;
            costs[id][q] = cost;
            queriesSubmitted++;
        } catch {}
    }

    function recordAnswer(uint256 studySeed, uint256 callerSeed, uint256 querySeed) external {
        uint256 id = _study(studySeed);
        address caller = _caller(id, callerSeed);
        bytes32 q = _queryHash(querySeed);
        vm.prank(caller);
        try studies.recordAnswer(id, q, keccak256(abi.encode("answer", q))) {
            if (caller != model[id].researcher || costs[id][q] == 0 || answered[id][q]) {
                unauthorizedSucceeded++;
            }
            answered[id][q] = true;
        } catch {}
    }

    function roll(uint256 blocks) external {
        vm.roll(block.number + bound(blocks, 1, 100));
    }
}
