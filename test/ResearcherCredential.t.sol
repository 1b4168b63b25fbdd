// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Base} from "./Base.t.sol";
import {StudyRegistry} from "../contracts/StudyRegistry.sol";
import {IStudyRegistry} from "../contracts/interfaces/IStudyRegistry.sol";
import {IParticipantRegistry} from "../contracts/interfaces/IParticipantRegistry.sol";

/// @notice A researcher's studies end with the credential run they were registered in
/// (issue 14, re-credentialing review finding A10).
contract ResearcherCredentialTest is Base {
    StudyRegistry internal studies;

    function setUp() public override {
        super.setUp();
        studies = new StudyRegistry(governor, participants);
    }

    function approvedStudy() internal returns (uint256 id) {
        vm.prank(researcher);
        id = studies.registerStudy(keccak256("protocol"), LABS, 5, 100);
        vm.prank(governor);
        studies.approveStudy(id);
    }

    function reissue(bytes32 ref) internal {
        vm.prank(governor);
        participants.issueCredential(
            researcher, IParticipantRegistry.Role.Researcher, ref, now40() + YEAR
        );
    }

    function recordQuery(uint256 id, bytes32 queryHash) internal {
        vm.roll(block.number + 1);
        vm.prank(researcher);
        studies.recordQuery(
            id, queryHash, 1, uint64(block.number - 1), keccak256(abi.encode(queryHash))
        );
    }

    /// A10. Before, a study approved under a credential later revoked took queries again once
    /// the credential was re-issued. Now its receipts revert with the named error.
    function test_attack_studyNotRevivedByRecredential() public {
        uint256 id = approvedStudy();
        uint40 registeredAt = now40();
        vm.prank(governor);
        participants.revokeCredential(researcher);
        vm.warp(block.timestamp + 1 days);
        reissue(keccak256("irb2"));
        uint40 validSince = participants.validSinceOf(researcher);
        vm.roll(block.number + 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IStudyRegistry.StudyResearcherRecredentialed.selector, id, registeredAt, validSince
            )
        );
        vm.prank(researcher);
        studies.recordQuery(id, keccak256("q"), 1, uint64(block.number - 1), keccak256("a"));
        assertEq(studies.studyOf(id).spent, 0);

        // A study registered and approved in the new run works.
        vm.warp(block.timestamp + 1);
        uint256 fresh = approvedStudy();
        recordQuery(fresh, keccak256("q"));
        assertEq(studies.studyOf(fresh).spent, 1);
    }

    /// A renewal of a live credential keeps its run: the study goes on.
    function test_studySurvivesRenewalOfLiveCredential() public {
        uint256 id = approvedStudy();
        vm.warp(block.timestamp + 1 days);
        reissue(keccak256("renewed"));
        recordQuery(id, keccak256("q"));
        assertEq(studies.studyOf(id).spent, 1);
    }
}
