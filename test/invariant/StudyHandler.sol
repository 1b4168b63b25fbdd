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
    address[] public patients; // study pseudonyms
    mapping(address pseudonym => uint256) internal _keyOf;
    address[] public others; // a stranger, a provider

    struct ModelStudy {
        address researcher;
        IStudyRegistry.Status status;
        uint64 budget;
        uint64 spent;
    }

    mapping(uint256 studyId => ModelStudy) public model;
    mapping(uint256 studyId => mapping(address patient => bool)) public optedIn;
    /// @dev The receipts the chain must hold: cost, pinned block and answer of each query.
    mapping(uint256 studyId => mapping(bytes32 queryHash => IStudyRegistry.Query)) internal
        _receipts;
    uint256 public studyCount;
    uint256 public queriesRecorded;
    uint256 public unauthorizedSucceeded;
    /// @dev recordQuery calls that every rule allowed and that were refused all the same.
    uint256 public validRefused;

    constructor(
        StudyRegistry studies_,
        address governor_,
        address[] memory researchers_,
        uint256[] memory patientKeys_,
        address[] memory others_
    ) {
        studies = studies_;
        governor = governor_;
        researchers = researchers_;
        for (uint256 i; i < patientKeys_.length; ++i) {
            address p = vm.addr(patientKeys_[i]);
            patients.push(p);
            _keyOf[p] = patientKeys_[i];
        }
        others = others_;
    }

    function patientCount() external view returns (uint256) {
        return patients.length;
    }

    function receiptOf(uint256 studyId, bytes32 queryHash)
        external
        view
        returns (IStudyRegistry.Query memory)
    {
        return _receipts[studyId][queryHash];
    }

    /// @dev An existing study id most of the time, now and then 0 or one past the last.
    function _study(uint256 seed) internal view returns (uint256) {
        if (studyCount == 0 || seed % 8 == 0) return (seed >> 3) % 2 == 0 ? 0 : studyCount + 1;
        return 1 + (seed >> 3) % studyCount;
    }

    /// @dev One of eight query hashes, now and then zero.
    function _queryHash(uint256 seed) internal pure returns (bytes32) {
        if (seed % 16 == 15) return bytes32(0);
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

    /// @dev The pseudonym's EIP-712 signature of `structHash`, or now and then another
    /// pseudonym's (which must be refused).
    function _sign(address p, bytes32 structHash, bool wrongKey)
        internal
        view
        returns (bytes memory)
    {
        uint256 key = wrongKey ? _keyOf[patients[0]] + 1 : _keyOf[p];
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(
            key, keccak256(abi.encodePacked("\x19\x01", studies.DOMAIN_SEPARATOR(), structHash))
        );
        return abi.encodePacked(r, s, v);
    }

    /// @dev A signed opt-in of a pseudonym, relayed by a stranger; a second later than the last
    /// signed message (the handler's clock moves a second per signed call).
    function optIn(uint256 studySeed, uint256 patientSeed) external {
        uint256 id = _study(studySeed);
        address p = patients[patientSeed % patients.length];
        vm.warp(block.timestamp + 1);
        bool wrongKey = (patientSeed >> 8) % 8 == 0;
        uint24 epoch = studies.participationOf(id, p).epoch;
        uint40 t = uint40(block.timestamp);
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory tags = new bytes(studies.TAGS_LENGTH());
        bytes memory sig = _sign(
            p,
            keccak256(
                abi.encode(studies.OPT_IN_TYPEHASH(), id, p, keccak256(tags), epoch, t, deadline)
            ),
            wrongKey
        );
        vm.prank(others[patientSeed % others.length]);
        try studies.optInBySig(id, p, tags, epoch, t, deadline, sig) {
            if (wrongKey || model[id].status != IStudyRegistry.Status.Approved || optedIn[id][p]) {
                unauthorizedSucceeded++;
            }
            optedIn[id][p] = true;
        } catch {}
    }

    /// @dev A signed withdrawal of a pseudonym, relayed by a stranger.
    function withdraw(uint256 studySeed, uint256 patientSeed) external {
        uint256 id = _study(studySeed);
        address p = patients[patientSeed % patients.length];
        vm.warp(block.timestamp + 1);
        bool wrongKey = (patientSeed >> 8) % 8 == 0;
        uint24 epoch = studies.participationOf(id, p).epoch;
        uint40 t = uint40(block.timestamp);
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = _sign(
            p,
            keccak256(abi.encode(studies.WITHDRAW_TYPEHASH(), id, p, epoch, t, deadline)),
            wrongKey
        );
        vm.prank(others[patientSeed % others.length]);
        try studies.withdrawBySig(id, p, epoch, t, deadline, sig) {
            if (wrongKey) unauthorizedSucceeded++;
            optedIn[id][p] = false;
        } catch {}
    }

    function recordQuery(
        uint256 studySeed,
        uint256 callerSeed,
        uint256 querySeed,
        uint64 cost,
        uint256 pinSeed
    ) external {
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
        // Mostly a block up to now; now and then the next block (the future).
        uint64 pinned = pinSeed % 16 == 0
            ? uint64(block.number + 1)
            : uint64(block.number - (pinSeed >> 8) % (block.number + 1));
        // Now and then a zero answer hash.
        bytes32 answer =
            (pinSeed >> 4) % 16 == 0 ? bytes32(0) : keccak256(abi.encode("answer", pinSeed));
        bool allowed = caller == m.researcher && m.researcher != address(0)
            && m.status == IStudyRegistry.Status.Approved && cost != 0 && q != bytes32(0)
            && answer != bytes32(0) && pinned <= block.number && _receipts[id][q].cost == 0
            && uint256(m.spent) + cost <= m.budget;
        vm.prank(caller);
        try studies.recordQuery(id, q, cost, pinned, answer) {
            if (!allowed) unauthorizedSucceeded++;
            model[id].spent = m.spent + cost;
            _receipts[id][q] = IStudyRegistry.Query(cost, pinned, answer);
            queriesRecorded++;
        } catch {
            if (allowed) validRefused++;
        }
    }

    function roll(uint256 blocks) external {
        vm.roll(block.number + bound(blocks, 1, 100));
    }
}
