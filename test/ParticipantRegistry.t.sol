// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Base} from "./Base.t.sol";
import {ParticipantRegistry} from "../contracts/ParticipantRegistry.sol";
import {IParticipantRegistry} from "../contracts/interfaces/IParticipantRegistry.sol";

contract ParticipantRegistryTest is Base {
    IParticipantRegistry.Role internal constant NONE = IParticipantRegistry.Role.None;
    IParticipantRegistry.Role internal constant PROVIDER = IParticipantRegistry.Role.Provider;
    IParticipantRegistry.Role internal constant RESEARCHER = IParticipantRegistry.Role.Researcher;

    address internal clinic = makeAddr("clinic");
    bytes32 internal constant REF = keccak256("clinic licence");

    // ------------------------------------------------------------ helpers

    function issue(address account, IParticipantRegistry.Role role, bytes32 ref, uint40 expiresAt)
        internal
    {
        vm.prank(governor);
        participants.issueCredential(account, role, ref, expiresAt);
    }

    function revokeAs(address account) internal {
        vm.prank(governor);
        participants.revokeCredential(account);
    }

    function assertCredential(
        address account,
        IParticipantRegistry.Role role,
        uint40 issuedAt,
        uint40 expiresAt,
        bool revoked,
        bytes32 ref
    ) internal view {
        IParticipantRegistry.Credential memory c = participants.credentialOf(account);
        assertEq(uint8(c.role), uint8(role), "role");
        assertEq(c.issuedAt, issuedAt, "issuedAt");
        assertEq(c.expiresAt, expiresAt, "expiresAt");
        assertEq(c.revoked, revoked, "revoked");
        assertEq(c.ref, ref, "ref");
    }

    function unauthorized(address caller) internal view returns (bytes memory) {
        return abi.encodeWithSelector(
            IAccessControl.AccessControlUnauthorizedAccount.selector,
            caller,
            participants.GOVERNANCE_ROLE()
        );
    }

    // -------------------------------------------------------- constructor

    function test_constructor_grantsAdminAndGovernance() public view {
        assertTrue(participants.hasRole(participants.DEFAULT_ADMIN_ROLE(), governor));
        assertTrue(participants.hasRole(participants.GOVERNANCE_ROLE(), governor));
        assertFalse(participants.hasRole(participants.DEFAULT_ADMIN_ROLE(), address(this)));
        assertFalse(participants.hasRole(participants.GOVERNANCE_ROLE(), address(this)));
        assertEq(participants.GOVERNANCE_ROLE(), keccak256("GOVERNANCE_ROLE"));
    }

    function test_constructor_revertsZeroAdmin() public {
        vm.expectRevert(
            abi.encodeWithSelector(IParticipantRegistry.ParticipantZeroAddress.selector)
        );
        new ParticipantRegistry(address(0));
    }

    function test_constructor_fixtureCredentials() public view {
        assertCredential(
            hospitalA, PROVIDER, now40(), now40() + YEAR, false, keccak256("licence A")
        );
        assertCredential(
            hospitalB, PROVIDER, now40(), now40() + YEAR, false, keccak256("licence B")
        );
        assertCredential(researcher, RESEARCHER, now40(), now40() + YEAR, false, keccak256("irb"));
    }

    // ---------------------------------------------------- issueCredential

    function test_issueCredential_emitsAndStores() public {
        vm.warp(block.timestamp + 123);
        uint40 expiresAt = now40() + 30 days;
        vm.expectEmit(true, true, true, true, address(participants));
        emit IParticipantRegistry.CredentialIssued(clinic, PROVIDER, REF, now40(), expiresAt);
        issue(clinic, PROVIDER, REF, expiresAt);

        assertCredential(clinic, PROVIDER, now40(), expiresAt, false, REF);
        assertTrue(participants.isCredentialed(clinic, PROVIDER));
        assertFalse(participants.isCredentialed(clinic, RESEARCHER));
        assertFalse(participants.isCredentialed(clinic, NONE));
    }

    function test_issueCredential_researcher() public {
        uint40 expiresAt = now40() + 1;
        vm.expectEmit(true, true, true, true, address(participants));
        emit IParticipantRegistry.CredentialIssued(clinic, RESEARCHER, REF, now40(), expiresAt);
        issue(clinic, RESEARCHER, REF, expiresAt);

        assertCredential(clinic, RESEARCHER, now40(), expiresAt, false, REF);
        assertTrue(participants.isCredentialed(clinic, RESEARCHER));
        assertFalse(participants.isCredentialed(clinic, PROVIDER));
    }

    function test_issueCredential_revertsZeroAddress() public {
        vm.expectRevert(
            abi.encodeWithSelector(IParticipantRegistry.ParticipantZeroAddress.selector)
        );
        issue(address(0), PROVIDER, REF, now40() + YEAR);
        assertCredential(address(0), NONE, 0, 0, false, bytes32(0));
    }

    function test_issueCredential_revertsRoleNone() public {
        vm.expectRevert(
            abi.encodeWithSelector(IParticipantRegistry.ParticipantInvalidRole.selector)
        );
        issue(clinic, NONE, REF, now40() + YEAR);
        assertCredential(clinic, NONE, 0, 0, false, bytes32(0));
    }

    function test_issueCredential_revertsRoleNoneOnExisting() public {
        // Role.None cannot be used to wipe an existing credential either.
        vm.expectRevert(
            abi.encodeWithSelector(IParticipantRegistry.ParticipantInvalidRole.selector)
        );
        issue(hospitalA, NONE, REF, now40() + YEAR);
        assertTrue(participants.isCredentialed(hospitalA, PROVIDER));
    }

    function test_issueCredential_revertsEmptyReference() public {
        vm.expectRevert(
            abi.encodeWithSelector(IParticipantRegistry.ParticipantEmptyReference.selector)
        );
        issue(clinic, PROVIDER, bytes32(0), now40() + YEAR);
        assertCredential(clinic, NONE, 0, 0, false, bytes32(0));
    }

    function test_issueCredential_revertsExpiryInPast() public {
        uint40 expiresAt = now40() - 1;
        vm.expectRevert(
            abi.encodeWithSelector(
                IParticipantRegistry.ParticipantExpiryInPast.selector, expiresAt, now40()
            )
        );
        issue(clinic, PROVIDER, REF, expiresAt);
        assertCredential(clinic, NONE, 0, 0, false, bytes32(0));
    }

    function test_issueCredential_revertsExpiryNow() public {
        uint40 expiresAt = now40();
        vm.expectRevert(
            abi.encodeWithSelector(
                IParticipantRegistry.ParticipantExpiryInPast.selector, expiresAt, now40()
            )
        );
        issue(clinic, PROVIDER, REF, expiresAt);
    }

    function test_issueCredential_revertsExpiryZero() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IParticipantRegistry.ParticipantExpiryInPast.selector, uint40(0), now40()
            )
        );
        issue(clinic, PROVIDER, REF, 0);
    }

    function test_issueCredential_expiryOneSecondAheadSucceeds() public {
        issue(clinic, PROVIDER, REF, now40() + 1);
        assertTrue(participants.isCredentialed(clinic, PROVIDER));
        vm.warp(block.timestamp + 1);
        assertFalse(participants.isCredentialed(clinic, PROVIDER));
    }

    function test_issueCredential_revertsNonGovernance() public {
        vm.expectRevert(unauthorized(stranger));
        vm.prank(stranger);
        participants.issueCredential(clinic, PROVIDER, REF, now40() + YEAR);

        // A credentialed provider is not governance either.
        vm.expectRevert(unauthorized(hospitalA));
        vm.prank(hospitalA);
        participants.issueCredential(clinic, PROVIDER, REF, now40() + YEAR);

        assertCredential(clinic, NONE, 0, 0, false, bytes32(0));
    }

    function test_issueCredential_accessCheckedBeforeArguments() public {
        // Even with invalid arguments a non-governance caller gets the access error.
        vm.expectRevert(unauthorized(stranger));
        vm.prank(stranger);
        participants.issueCredential(address(0), NONE, bytes32(0), 0);
    }

    function test_issueCredential_validationOrder() public {
        // Zero address is reported before the role, the reference and the expiry.
        vm.expectRevert(
            abi.encodeWithSelector(IParticipantRegistry.ParticipantZeroAddress.selector)
        );
        issue(address(0), NONE, bytes32(0), 0);
        vm.expectRevert(
            abi.encodeWithSelector(IParticipantRegistry.ParticipantInvalidRole.selector)
        );
        issue(clinic, NONE, bytes32(0), 0);
        vm.expectRevert(
            abi.encodeWithSelector(IParticipantRegistry.ParticipantEmptyReference.selector)
        );
        issue(clinic, PROVIDER, bytes32(0), 0);
    }

    function test_issueCredential_newGovernorCanIssue() public {
        bytes32 govRole = participants.GOVERNANCE_ROLE();
        vm.prank(governor);
        participants.grantRole(govRole, stranger);

        vm.prank(stranger);
        participants.issueCredential(clinic, PROVIDER, REF, now40() + YEAR);
        assertTrue(participants.isCredentialed(clinic, PROVIDER));
    }

    function test_issueCredential_revokedGovernorCannotIssue() public {
        bytes32 govRole = participants.GOVERNANCE_ROLE();
        vm.prank(governor);
        participants.revokeRole(govRole, governor);

        vm.expectRevert(unauthorized(governor));
        issue(clinic, PROVIDER, REF, now40() + YEAR);
    }

    function test_issueCredential_reissueReplacesRole() public {
        vm.warp(block.timestamp + 10 days);
        uint40 expiresAt = now40() + 90 days;
        bytes32 ref = keccak256("now a researcher");

        vm.expectEmit(true, true, true, true, address(participants));
        emit IParticipantRegistry.CredentialIssued(hospitalA, RESEARCHER, ref, now40(), expiresAt);
        issue(hospitalA, RESEARCHER, ref, expiresAt);

        assertCredential(hospitalA, RESEARCHER, now40(), expiresAt, false, ref);
        assertFalse(participants.isCredentialed(hospitalA, PROVIDER));
        assertTrue(participants.isCredentialed(hospitalA, RESEARCHER));
    }

    function test_issueCredential_reissueUnrevokes() public {
        revokeAs(hospitalA);
        assertFalse(participants.isCredentialed(hospitalA, PROVIDER));
        assertTrue(participants.credentialOf(hospitalA).revoked);

        vm.warp(block.timestamp + 1 days);
        uint40 expiresAt = now40() + YEAR;
        bytes32 ref = keccak256("licence A renewed");
        vm.expectEmit(true, true, true, true, address(participants));
        emit IParticipantRegistry.CredentialIssued(hospitalA, PROVIDER, ref, now40(), expiresAt);
        issue(hospitalA, PROVIDER, ref, expiresAt);

        assertCredential(hospitalA, PROVIDER, now40(), expiresAt, false, ref);
        assertTrue(participants.isCredentialed(hospitalA, PROVIDER));
    }

    function test_issueCredential_reissueRenewsExpired() public {
        uint40 oldExpiry = participants.credentialOf(hospitalA).expiresAt;
        vm.warp(oldExpiry + 5);
        assertFalse(participants.isCredentialed(hospitalA, PROVIDER));

        issue(hospitalA, PROVIDER, keccak256("licence A"), now40() + YEAR);
        assertCredential(
            hospitalA, PROVIDER, now40(), now40() + YEAR, false, keccak256("licence A")
        );
        assertTrue(participants.isCredentialed(hospitalA, PROVIDER));
    }

    function test_issueCredential_reissueCanShortenExpiry() public {
        uint40 shorter = now40() + 1 days;
        issue(hospitalA, PROVIDER, keccak256("licence A"), shorter);
        assertEq(participants.credentialOf(hospitalA).expiresAt, shorter);
        vm.warp(shorter);
        assertFalse(participants.isCredentialed(hospitalA, PROVIDER));
    }

    function test_issueCredential_doesNotTouchOtherAccounts() public {
        issue(hospitalA, RESEARCHER, REF, now40() + 1 days);
        assertTrue(participants.isCredentialed(hospitalB, PROVIDER));
        assertTrue(participants.isCredentialed(researcher, RESEARCHER));
    }

    // --------------------------------------------------- revokeCredential

    function test_revokeCredential_emitsAndRevokes() public {
        vm.warp(block.timestamp + 7 days);
        IParticipantRegistry.Credential memory before = participants.credentialOf(hospitalA);

        vm.expectEmit(true, true, true, true, address(participants));
        emit IParticipantRegistry.CredentialRevoked(hospitalA, PROVIDER, now40());
        revokeAs(hospitalA);

        // Only the revoked flag changes; the record is kept.
        assertCredential(hospitalA, PROVIDER, before.issuedAt, before.expiresAt, true, before.ref);
        // Stops counting in the same block.
        assertFalse(participants.isCredentialed(hospitalA, PROVIDER));
        assertTrue(participants.isCredentialed(hospitalB, PROVIDER));
    }

    function test_revokeCredential_researcher() public {
        vm.expectEmit(true, true, true, true, address(participants));
        emit IParticipantRegistry.CredentialRevoked(researcher, RESEARCHER, now40());
        revokeAs(researcher);
        assertFalse(participants.isCredentialed(researcher, RESEARCHER));
        assertTrue(participants.credentialOf(researcher).revoked);
    }

    function test_revokeCredential_revertsNotCredentialed() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IParticipantRegistry.ParticipantNotCredentialed.selector, stranger
            )
        );
        revokeAs(stranger);

        vm.expectRevert(
            abi.encodeWithSelector(
                IParticipantRegistry.ParticipantNotCredentialed.selector, address(0)
            )
        );
        revokeAs(address(0));
    }

    function test_revokeCredential_revertsAlreadyRevoked() public {
        revokeAs(hospitalA);
        vm.expectRevert(
            abi.encodeWithSelector(
                IParticipantRegistry.ParticipantNotCredentialed.selector, hospitalA
            )
        );
        revokeAs(hospitalA);
    }

    function test_revokeCredential_revertsExpired() public {
        uint40 expiresAt = participants.credentialOf(hospitalA).expiresAt;
        vm.warp(expiresAt);
        vm.expectRevert(
            abi.encodeWithSelector(
                IParticipantRegistry.ParticipantNotCredentialed.selector, hospitalA
            )
        );
        revokeAs(hospitalA);
        assertFalse(participants.credentialOf(hospitalA).revoked);
    }

    function test_revokeCredential_lastLiveSecondSucceeds() public {
        uint40 expiresAt = participants.credentialOf(hospitalA).expiresAt;
        vm.warp(expiresAt - 1);
        vm.expectEmit(true, true, true, true, address(participants));
        emit IParticipantRegistry.CredentialRevoked(hospitalA, PROVIDER, expiresAt - 1);
        revokeAs(hospitalA);
        assertTrue(participants.credentialOf(hospitalA).revoked);
    }

    function test_revokeCredential_revertsNonGovernance() public {
        vm.expectRevert(unauthorized(stranger));
        vm.prank(stranger);
        participants.revokeCredential(hospitalA);

        // Not even the account itself.
        vm.expectRevert(unauthorized(hospitalA));
        vm.prank(hospitalA);
        participants.revokeCredential(hospitalA);

        assertTrue(participants.isCredentialed(hospitalA, PROVIDER));
    }

    // ---------------------------------------------------- isCredentialed

    function test_isCredentialed_roleMismatch() public view {
        assertTrue(participants.isCredentialed(hospitalA, PROVIDER));
        assertFalse(participants.isCredentialed(hospitalA, RESEARCHER));
        assertTrue(participants.isCredentialed(researcher, RESEARCHER));
        assertFalse(participants.isCredentialed(researcher, PROVIDER));
    }

    function test_isCredentialed_noneAlwaysFalse() public {
        assertFalse(participants.isCredentialed(hospitalA, NONE));
        assertFalse(participants.isCredentialed(researcher, NONE));
        assertFalse(participants.isCredentialed(stranger, NONE));
        assertFalse(participants.isCredentialed(address(0), NONE));
        revokeAs(hospitalA);
        assertFalse(participants.isCredentialed(hospitalA, NONE));
    }

    function test_isCredentialed_uncredentialedFalse() public view {
        assertFalse(participants.isCredentialed(stranger, PROVIDER));
        assertFalse(participants.isCredentialed(stranger, RESEARCHER));
        assertFalse(participants.isCredentialed(patient, PROVIDER));
        assertFalse(participants.isCredentialed(governor, PROVIDER));
    }

    function test_isCredentialed_expiryExclusive() public {
        uint40 expiresAt = now40() + 1 hours;
        issue(clinic, PROVIDER, REF, expiresAt);
        vm.warp(expiresAt - 1);
        assertTrue(participants.isCredentialed(clinic, PROVIDER));
        vm.warp(expiresAt);
        assertFalse(participants.isCredentialed(clinic, PROVIDER));
        vm.warp(expiresAt + 1);
        assertFalse(participants.isCredentialed(clinic, PROVIDER));
    }

    function test_isCredentialed_revokedFalse() public {
        revokeAs(researcher);
        assertFalse(participants.isCredentialed(researcher, RESEARCHER));
        assertFalse(participants.isCredentialed(researcher, PROVIDER));
    }

    // ------------------------------------------------------ credentialOf

    function test_credentialOf_unknownIsZero() public view {
        assertCredential(stranger, NONE, 0, 0, false, bytes32(0));
    }

    function test_credentialOf_keptAfterExpiry() public {
        uint40 issuedAt = now40();
        vm.warp(issuedAt + YEAR + 1);
        assertCredential(
            hospitalA, PROVIDER, issuedAt, issuedAt + YEAR, false, keccak256("licence A")
        );
    }

    // --------------------------------------------------------------- fuzz

    function testFuzz_isCredentialed_liveExactlyBeforeExpiry(uint40 duration, uint40 elapsed)
        public
    {
        uint40 start = now40();
        duration = uint40(bound(duration, 1, type(uint40).max - start));
        elapsed = uint40(bound(elapsed, 0, type(uint40).max - start));
        issue(clinic, PROVIDER, REF, start + duration);

        vm.warp(uint256(start) + elapsed);
        bool live = elapsed < duration;
        assertEq(participants.isCredentialed(clinic, PROVIDER), live);
        assertFalse(participants.isCredentialed(clinic, RESEARCHER));
        assertFalse(participants.isCredentialed(clinic, NONE));

        if (live) {
            vm.expectEmit(true, true, true, true, address(participants));
            emit IParticipantRegistry.CredentialRevoked(clinic, PROVIDER, now40());
        } else {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IParticipantRegistry.ParticipantNotCredentialed.selector, clinic
                )
            );
        }
        revokeAs(clinic);
        assertFalse(participants.isCredentialed(clinic, PROVIDER));
        assertEq(participants.credentialOf(clinic).revoked, live);
    }

    function testFuzz_issueCredential_expiryNotInFutureReverts(uint40 expiresAt, uint40 nowTs)
        public
    {
        nowTs = uint40(bound(nowTs, 1, type(uint40).max));
        vm.warp(nowTs);
        expiresAt = uint40(bound(expiresAt, 0, nowTs));
        vm.expectRevert(
            abi.encodeWithSelector(
                IParticipantRegistry.ParticipantExpiryInPast.selector, expiresAt, nowTs
            )
        );
        issue(clinic, PROVIDER, REF, expiresAt);
        assertCredential(clinic, NONE, 0, 0, false, bytes32(0));
    }

    function testFuzz_issueCredential_storesFields(
        address account,
        uint8 roleSeed,
        bytes32 ref,
        uint40 expiresAt
    ) public {
        vm.assume(account != address(0));
        vm.assume(ref != bytes32(0));
        IParticipantRegistry.Role role = IParticipantRegistry.Role(bound(roleSeed, 1, 2));
        IParticipantRegistry.Role other = role == PROVIDER ? RESEARCHER : PROVIDER;
        expiresAt = uint40(bound(expiresAt, uint256(now40()) + 1, type(uint40).max));

        vm.expectEmit(true, true, true, true, address(participants));
        emit IParticipantRegistry.CredentialIssued(account, role, ref, now40(), expiresAt);
        issue(account, role, ref, expiresAt);

        assertCredential(account, role, now40(), expiresAt, false, ref);
        assertTrue(participants.isCredentialed(account, role));
        assertFalse(participants.isCredentialed(account, other));
        assertFalse(participants.isCredentialed(account, NONE));
    }

    function testFuzz_issueCredential_nonGovernanceReverts(address caller) public {
        vm.assume(caller != governor);
        vm.expectRevert(unauthorized(caller));
        vm.prank(caller);
        participants.issueCredential(clinic, PROVIDER, REF, now40() + YEAR);

        vm.expectRevert(unauthorized(caller));
        vm.prank(caller);
        participants.revokeCredential(hospitalA);
    }

    // ------------------------------------------------------- validSince (issue 14, 10a)

    function test_validSince_setWhenFirstIssued() public view {
        assertEq(participants.validSinceOf(hospitalA), now40());
        assertEq(participants.credentialOf(hospitalA).validSince, now40());
        assertEq(participants.validSinceOf(stranger), 0);
    }

    function test_validSince_keptOnRenewalOfLiveCredential() public {
        uint40 since = now40();
        vm.warp(block.timestamp + 100 days);
        issue(hospitalA, PROVIDER, keccak256("renewed"), now40() + YEAR);
        assertEq(participants.validSinceOf(hospitalA), since);
        assertEq(participants.credentialOf(hospitalA).issuedAt, now40());
    }

    function test_validSince_resetAfterRevocation() public {
        revokeAs(hospitalA);
        vm.warp(block.timestamp + 1 days);
        issue(hospitalA, PROVIDER, keccak256("again"), now40() + YEAR);
        assertEq(participants.validSinceOf(hospitalA), now40() + 1);
    }

    function test_validSince_resetAfterLapse() public {
        vm.warp(participants.credentialOf(hospitalA).expiresAt);
        issue(hospitalA, PROVIDER, keccak256("again"), now40() + YEAR);
        assertEq(participants.validSinceOf(hospitalA), now40() + 1);
    }

    function test_validSince_resetOnRoleChange() public {
        vm.warp(block.timestamp + 1 days);
        issue(hospitalA, RESEARCHER, keccak256("irb"), now40() + YEAR);
        assertEq(participants.validSinceOf(hospitalA), now40() + 1);
    }
}
