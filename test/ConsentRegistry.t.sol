// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Base} from "./Base.t.sol";
import {MockWallet} from "./utils/MockWallet.sol";
import {ConsentRegistry} from "../contracts/ConsentRegistry.sol";
import {IConsentRegistry} from "../contracts/interfaces/IConsentRegistry.sol";
import {IParticipantRegistry} from "../contracts/interfaces/IParticipantRegistry.sol";

contract ConsentRegistryTest is Base {
    bytes32 internal constant TYPE_HASH = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    );
    uint40 internal constant MAX_CAP = 7 days;
    uint8 internal constant RESEARCH = 2;
    uint64 internal constant ALL = type(uint64).max;
    bytes32 internal constant REASON = keccak256("unconscious in the emergency room");

    /// @dev A second key: a second patient, or a wrong signer.
    uint256 internal otherKey = 0xC0FFEE;
    address internal other = vm.addr(0xC0FFEE);
    /// @dev The key that owns the ERC-1271 wallet.
    uint256 internal walletKey = 0xCAFE;

    /// @dev The fields of a signed grant, in the order of GRANT_TYPEHASH.
    struct SignedGrant {
        address patient;
        address grantee;
        uint64 categories;
        uint8 purpose;
        uint40 notBefore;
        uint40 expiresAt;
        address signer;
        uint24 epoch;
        uint40 issuedAt;
        uint256 deadline;
    }

    /// @dev The fields of a signed revocation, in the order of REVOKE_TYPEHASH.
    struct SignedRevoke {
        address patient;
        address grantee;
        address signer;
        uint24 epoch;
        uint40 issuedAt;
        uint256 deadline;
    }

    // ---------------------------------------------------------------- helpers

    function _signedGrant() internal view returns (SignedGrant memory) {
        return SignedGrant({
            patient: patient,
            grantee: hospitalA,
            categories: LABS,
            purpose: TREATMENT,
            notBefore: 0,
            expiresAt: now40() + YEAR,
            signer: patient,
            epoch: epochOf(patient, hospitalA),
            issuedAt: now40(),
            deadline: block.timestamp + 1 hours
        });
    }

    function _signedRevoke() internal view returns (SignedRevoke memory) {
        return SignedRevoke({
            patient: patient,
            grantee: hospitalA,
            signer: patient,
            epoch: epochOf(patient, hospitalA),
            issuedAt: now40(),
            deadline: block.timestamp + 1 hours
        });
    }

    function _grantHash(SignedGrant memory g) internal view returns (bytes32) {
        return keccak256(abi.encode(consent.GRANT_TYPEHASH(), g));
    }

    function _revokeHash(SignedRevoke memory r) internal view returns (bytes32) {
        return keccak256(abi.encode(consent.REVOKE_TYPEHASH(), r));
    }

    function _signGrant(uint256 key, SignedGrant memory g) internal view returns (bytes memory) {
        return sign(key, _grantHash(g));
    }

    function _signRevoke(uint256 key, SignedRevoke memory r) internal view returns (bytes memory) {
        return sign(key, _revokeHash(r));
    }

    function _domainSeparator(uint256 chainId, address verifyingContract)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(
            abi.encode(
                TYPE_HASH,
                keccak256("medrec.ConsentRegistry"),
                keccak256("1"),
                chainId,
                verifyingContract
            )
        );
    }

    function _signWithDomain(uint256 key, bytes32 domainSeparator, bytes32 structHash)
        internal
        pure
        returns (bytes memory)
    {
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(key, keccak256(abi.encodePacked("\x19\x01", domainSeparator, structHash)));
        return abi.encodePacked(r, s, v);
    }

    function _grantBySig(SignedGrant memory g, bytes memory signature) internal {
        consent.grantBySig(
            g.patient,
            g.grantee,
            g.categories,
            g.purpose,
            g.notBefore,
            g.expiresAt,
            g.signer,
            g.epoch,
            g.issuedAt,
            g.deadline,
            signature
        );
    }

    function _revokeBySig(SignedRevoke memory r, bytes memory signature) internal {
        consent.revokeBySig(
            r.patient, r.grantee, r.signer, r.epoch, r.issuedAt, r.deadline, signature
        );
    }

    function _setGuardian(uint64 scope, uint40 notBefore, uint40 expiresAt) internal {
        vm.prank(patient);
        consent.setGuardian(guardian, scope, notBefore, expiresAt);
    }

    function _open(address provider, address p, uint40 duration) internal {
        vm.prank(provider);
        consent.openEmergencyAccess(p, REASON, duration);
    }

    function _assertGrant(
        address p,
        address grantee,
        uint64 categories,
        uint8 purpose,
        uint40 notBefore,
        uint40 expiresAt
    ) internal view {
        IConsentRegistry.Grant memory g = consent.grantOf(p, grantee);
        assertEq(g.categories, categories, "categories");
        assertEq(g.purpose, purpose, "purpose");
        assertEq(g.notBefore, notBefore, "notBefore");
        assertEq(g.expiresAt, expiresAt, "expiresAt");
    }

    function _assertNoGrant(address p, address grantee) internal view {
        _assertGrant(p, grantee, 0, 0, 0, 0);
    }

    function _expectRevert(bytes4 selector, address a, address b) internal {
        vm.expectRevert(abi.encodeWithSelector(selector, a, b));
    }

    // ------------------------------------------------------------ constructor

    function test_constructor_setsRolesCapAndRegistry() public view {
        assertTrue(consent.hasRole(consent.DEFAULT_ADMIN_ROLE(), governor));
        assertTrue(consent.hasRole(consent.GOVERNANCE_ROLE(), governor));
        assertFalse(consent.hasRole(consent.GOVERNANCE_ROLE(), stranger));
        assertEq(address(consent.participants()), address(participants));
        assertEq(consent.emergencyCap(), CAP);
        assertEq(consent.MAX_EMERGENCY_CAP(), MAX_CAP);
    }

    function test_constructor_emitsEmergencyCapSet() public {
        vm.expectEmit(true, true, true, true);
        emit IConsentRegistry.EmergencyCapSet(2 hours);
        ConsentRegistry fresh = new ConsentRegistry(governor, participants, 2 hours);
        assertEq(fresh.emergencyCap(), 2 hours);
    }

    function test_constructor_revertsOnZeroAdmin() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentZeroAddress.selector));
        new ConsentRegistry(address(0), participants, CAP);
    }

    function test_constructor_revertsOnZeroParticipants() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentZeroAddress.selector));
        new ConsentRegistry(governor, IParticipantRegistry(address(0)), CAP);
    }

    function test_constructor_revertsOnInvalidCap() public {
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidCap.selector, 0, MAX_CAP)
        );
        new ConsentRegistry(governor, participants, 0);
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentInvalidCap.selector, MAX_CAP + 1, MAX_CAP
            )
        );
        new ConsentRegistry(governor, participants, MAX_CAP + 1);
    }

    // ------------------------------------------------------------------ grant

    function test_grant_storesAndEmits() public {
        uint40 exp = now40() + YEAR;
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.Granted(
            patient, hospitalA, patient, LABS | NOTES, TREATMENT, now40(), exp, 1, 0
        );
        vm.prank(patient);
        consent.grant(patient, hospitalA, LABS | NOTES, TREATMENT, 0, exp);

        _assertGrant(patient, hospitalA, LABS | NOTES, TREATMENT, now40(), exp);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
        assertTrue(consent.canRead(hospitalA, patient, NOTES_CAT));
        assertFalse(consent.canRead(hospitalA, patient, 0));
        assertEq(consent.readableCategories(hospitalA, patient), LABS | NOTES);
        // Only the named grantee gains access.
        assertFalse(consent.canRead(hospitalB, patient, LABS_CAT));
        assertEq(consent.readableCategories(hospitalB, patient), 0);
    }

    function test_grant_keepsExplicitPastNotBefore() public {
        uint40 nb = now40() - 1 days;
        uint40 exp = now40() + 1 days;
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.Granted(patient, hospitalA, patient, LABS, TREATMENT, nb, exp, 1, 0);
        vm.prank(patient);
        consent.grant(patient, hospitalA, LABS, TREATMENT, nb, exp);
        _assertGrant(patient, hospitalA, LABS, TREATMENT, nb, exp);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
    }

    function test_grant_replacesPreviousGrant() public {
        grantAs(patient, hospitalA, LABS | NOTES);
        assertEq(consent.readableCategories(hospitalA, patient), LABS | NOTES);

        uint40 nb = now40() + 1 days;
        uint40 exp = now40() + 30 days;
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.Granted(patient, hospitalA, patient, NOTES, RESEARCH, nb, exp, 2, 0);
        vm.prank(patient);
        consent.grant(patient, hospitalA, NOTES, RESEARCH, nb, exp);

        // The new grant replaces the old one whole: categories, purpose and window.
        _assertGrant(patient, hospitalA, NOTES, RESEARCH, nb, exp);
        assertEq(consent.readableCategories(hospitalA, patient), 0);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        vm.warp(nb);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        assertTrue(consent.canRead(hospitalA, patient, NOTES_CAT));
        vm.warp(exp);
        assertEq(consent.readableCategories(hospitalA, patient), 0);
    }

    function test_grant_futureNotBeforeReadableFromNotBefore() public {
        uint40 nb = now40() + 7 days;
        uint40 exp = nb + 30 days;
        vm.prank(patient);
        consent.grant(patient, hospitalA, LABS, TREATMENT, nb, exp);

        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        vm.warp(nb - 1);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        assertEq(consent.readableCategories(hospitalA, patient), 0);
        vm.warp(nb);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
        assertEq(consent.readableCategories(hospitalA, patient), LABS);
    }

    function test_grant_expiryIsExclusive() public {
        uint40 exp = now40() + 10 days;
        vm.prank(patient);
        consent.grant(patient, hospitalA, LABS, TREATMENT, 0, exp);

        vm.warp(exp - 1);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
        vm.warp(exp);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        assertEq(consent.readableCategories(hospitalA, patient), 0);
        // The stored grant outlives its window.
        _assertGrant(patient, hospitalA, LABS, TREATMENT, exp - 10 days, exp);
    }

    function test_grant_revokedCredentialCannotRead() public {
        grantAs(patient, hospitalA, LABS);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
        vm.prank(governor);
        participants.revokeCredential(hospitalA);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        assertEq(consent.readableCategories(hospitalA, patient), 0);
        // The grant itself is untouched.
        _assertGrant(patient, hospitalA, LABS, TREATMENT, now40(), now40() + YEAR);
    }

    function test_grant_expiredCredentialCannotRead() public {
        uint40 credentialEnd = now40() + YEAR;
        vm.prank(patient);
        consent.grant(patient, hospitalA, LABS, TREATMENT, 0, now40() + 2 * YEAR);
        vm.warp(credentialEnd - 1);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
        vm.warp(credentialEnd);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        assertEq(consent.readableCategories(hospitalA, patient), 0);
    }

    function test_grant_researcherCannotRead() public {
        grantAs(patient, researcher, LABS);
        _assertGrant(patient, researcher, LABS, TREATMENT, now40(), now40() + YEAR);
        assertFalse(consent.canRead(researcher, patient, LABS_CAT));
        assertEq(consent.readableCategories(researcher, patient), 0);
    }

    function test_grant_uncredentialedGranteeCannotRead() public {
        grantAs(patient, stranger, LABS);
        assertFalse(consent.canRead(stranger, patient, LABS_CAT));
        assertEq(consent.readableCategories(stranger, patient), 0);
    }

    function test_grant_revertsOnZeroPatient() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentZeroAddress.selector));
        vm.prank(patient);
        consent.grant(address(0), hospitalA, LABS, TREATMENT, 0, now40() + YEAR);
    }

    function test_grant_revertsOnZeroGrantee() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentZeroAddress.selector));
        vm.prank(patient);
        consent.grant(patient, address(0), LABS, TREATMENT, 0, now40() + YEAR);
    }

    function test_grant_revertsOnSelf() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentSelf.selector));
        vm.prank(patient);
        consent.grant(patient, patient, LABS, TREATMENT, 0, now40() + YEAR);
    }

    function test_grant_revertsOnNoCategories() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentNoCategories.selector));
        vm.prank(patient);
        consent.grant(patient, hospitalA, 0, TREATMENT, 0, now40() + YEAR);
    }

    function test_grant_revertsOnNoPurpose() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentNoPurpose.selector));
        vm.prank(patient);
        consent.grant(patient, hospitalA, LABS, 0, 0, now40() + YEAR);
    }

    function test_grant_revertsOnEmptyWindow() public {
        uint40 nb = now40() + 1 days;
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidWindow.selector, nb, nb)
        );
        vm.prank(patient);
        consent.grant(patient, hospitalA, LABS, TREATMENT, nb, nb);
    }

    function test_grant_revertsOnInvertedWindow() public {
        uint40 nb = now40() + 2 days;
        uint40 exp = now40() + 1 days;
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidWindow.selector, nb, exp)
        );
        vm.prank(patient);
        consent.grant(patient, hospitalA, LABS, TREATMENT, nb, exp);
    }

    function test_grant_revertsOnExpiryNowWithImplicitNotBefore() public {
        uint40 nowTs = now40();
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidWindow.selector, nowTs, nowTs)
        );
        vm.prank(patient);
        consent.grant(patient, hospitalA, LABS, TREATMENT, 0, nowTs);
    }

    function test_grant_revertsOnWindowAlreadyOver() public {
        uint40 nb = now40() - 2 days;
        uint40 exp = now40();
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidWindow.selector, nb, exp)
        );
        vm.prank(patient);
        consent.grant(patient, hospitalA, LABS, TREATMENT, nb, exp);
    }

    function test_grant_revertsWhenStranger() public {
        uint40 exp = now40() + YEAR;
        _expectRevert(IConsentRegistry.ConsentUnauthorized.selector, patient, stranger);
        vm.prank(stranger);
        consent.grant(patient, hospitalA, LABS, TREATMENT, 0, exp);
        _assertNoGrant(patient, hospitalA);
    }

    function test_grant_revertsWhenGranteeGrantsItself() public {
        uint40 exp = now40() + YEAR;
        _expectRevert(IConsentRegistry.ConsentUnauthorized.selector, patient, hospitalA);
        vm.prank(hospitalA);
        consent.grant(patient, hospitalA, LABS, TREATMENT, 0, exp);
    }

    // -------------------------------------------------------- grant: guardian

    function test_grant_byGuardianWithinScope() public {
        _setGuardian(LABS | NOTES, 0, now40() + YEAR);
        uint40 exp = now40() + 30 days;
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.Granted(
            patient, hospitalA, guardian, LABS, TREATMENT, now40(), exp, 1, 0
        );
        vm.prank(guardian);
        consent.grant(patient, hospitalA, LABS, TREATMENT, 0, exp);
        _assertGrant(patient, hospitalA, LABS, TREATMENT, now40(), exp);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
    }

    function test_grant_byGuardianUntilOwnExpiry() public {
        uint40 guardianEnd = now40() + 30 days;
        _setGuardian(LABS, 0, guardianEnd);
        vm.prank(guardian);
        consent.grant(patient, hospitalA, LABS, TREATMENT, 0, guardianEnd);
        _assertGrant(patient, hospitalA, LABS, TREATMENT, now40(), guardianEnd);
    }

    function test_grant_revertsWhenGuardianOutOfScope() public {
        _setGuardian(LABS, 0, now40() + YEAR);
        uint40 exp = now40() + 30 days;
        _expectRevert(IConsentRegistry.ConsentGuardianOutOfScope.selector, patient, guardian);
        vm.prank(guardian);
        consent.grant(patient, hospitalA, LABS | NOTES, TREATMENT, 0, exp);
        _assertNoGrant(patient, hospitalA);
    }

    function test_grant_revertsWhenGuardianOverwritesGrantWiderThanScope() public {
        grantAs(patient, hospitalA, LABS | NOTES);
        _setGuardian(LABS, 0, now40() + YEAR);
        _expectRevert(IConsentRegistry.ConsentGuardianOutOfScope.selector, patient, guardian);
        vm.prank(guardian);
        consent.grant(patient, hospitalA, LABS, TREATMENT, 0, now40() + 1 days);
        assertEq(consent.grantOf(patient, hospitalA).categories, LABS | NOTES);
        assertTrue(consent.canRead(hospitalA, patient, NOTES_CAT));
    }

    function test_grant_byGuardianReplacesGrantWithinScope() public {
        grantAs(patient, hospitalA, LABS);
        _setGuardian(LABS | NOTES, 0, now40() + YEAR);
        vm.prank(guardian);
        consent.grant(patient, hospitalA, NOTES, TREATMENT, 0, now40() + 1 days);
        assertEq(consent.grantOf(patient, hospitalA).categories, NOTES);
    }

    function test_grant_revertsWhenGuardianGrantsBeyondOwnExpiry() public {
        uint40 guardianEnd = now40() + 30 days;
        _setGuardian(LABS, 0, guardianEnd);
        _expectRevert(IConsentRegistry.ConsentGuardianOutOfScope.selector, patient, guardian);
        vm.prank(guardian);
        consent.grant(patient, hospitalA, LABS, TREATMENT, 0, guardianEnd + 1);
    }

    function test_grant_revertsWhenGuardianBeforeNotBefore() public {
        uint40 guardianStart = now40() + 1 days;
        _setGuardian(LABS, guardianStart, guardianStart + YEAR);
        uint40 exp = guardianStart + 30 days;

        vm.warp(guardianStart - 1);
        _expectRevert(IConsentRegistry.ConsentUnauthorized.selector, patient, guardian);
        vm.prank(guardian);
        consent.grant(patient, hospitalA, LABS, TREATMENT, 0, exp);

        vm.warp(guardianStart);
        vm.prank(guardian);
        consent.grant(patient, hospitalA, LABS, TREATMENT, 0, exp);
        _assertGrant(patient, hospitalA, LABS, TREATMENT, guardianStart, exp);
    }

    function test_grant_revertsWhenGuardianExpired() public {
        uint40 guardianEnd = now40() + 30 days;
        _setGuardian(LABS, 0, guardianEnd);
        vm.warp(guardianEnd);
        uint40 exp = now40() + 1 days;
        _expectRevert(IConsentRegistry.ConsentUnauthorized.selector, patient, guardian);
        vm.prank(guardian);
        consent.grant(patient, hospitalA, LABS, TREATMENT, 0, exp);
    }

    function test_grant_revertsWhenGuardianRemoved() public {
        _setGuardian(LABS, 0, now40() + YEAR);
        vm.prank(patient);
        consent.removeGuardian(guardian);
        uint40 exp = now40() + 1 days;
        _expectRevert(IConsentRegistry.ConsentUnauthorized.selector, patient, guardian);
        vm.prank(guardian);
        consent.grant(patient, hospitalA, LABS, TREATMENT, 0, exp);
    }

    function test_grant_revertsWhenGuardianOfAnotherPatient() public {
        vm.prank(other);
        consent.setGuardian(guardian, ALL, 0, now40() + YEAR);
        uint40 exp = now40() + 1 days;
        _expectRevert(IConsentRegistry.ConsentUnauthorized.selector, patient, guardian);
        vm.prank(guardian);
        consent.grant(patient, hospitalA, LABS, TREATMENT, 0, exp);
    }

    // ----------------------------------------------------------------- revoke

    function test_revoke_deletesAndEmits() public {
        grantAs(patient, hospitalA, LABS);
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.Revoked(patient, hospitalA, patient, 2, 0);
        vm.prank(patient);
        consent.revoke(patient, hospitalA);
        _assertNoGrant(patient, hospitalA);
    }

    function test_revoke_takesEffectInSameBlock() public {
        grantAs(patient, hospitalA, LABS | NOTES);
        uint256 blockNumber = block.number;
        uint256 ts = block.timestamp;
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
        vm.prank(patient);
        consent.revoke(patient, hospitalA);
        assertEq(block.number, blockNumber);
        assertEq(block.timestamp, ts);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        assertFalse(consent.canRead(hospitalA, patient, NOTES_CAT));
        assertEq(consent.readableCategories(hospitalA, patient), 0);
    }

    function test_revoke_leavesOtherGranteesAlone() public {
        grantAs(patient, hospitalA, LABS);
        grantAs(patient, hospitalB, NOTES);
        vm.prank(patient);
        consent.revoke(patient, hospitalA);
        assertTrue(consent.canRead(hospitalB, patient, NOTES_CAT));
        _assertGrant(patient, hospitalB, NOTES, TREATMENT, now40(), now40() + YEAR);
    }

    function test_revoke_expiredGrantStillRevocable() public {
        grantAs(patient, hospitalA, LABS);
        vm.warp(block.timestamp + 2 * YEAR);
        vm.prank(patient);
        consent.revoke(patient, hospitalA);
        _assertNoGrant(patient, hospitalA);
    }

    function test_revoke_revertsWhenNoGrant() public {
        _expectRevert(IConsentRegistry.ConsentGrantNotFound.selector, patient, hospitalA);
        vm.prank(patient);
        consent.revoke(patient, hospitalA);
    }

    function test_revoke_revertsWhenRevokedTwice() public {
        grantAs(patient, hospitalA, LABS);
        vm.prank(patient);
        consent.revoke(patient, hospitalA);
        _expectRevert(IConsentRegistry.ConsentGrantNotFound.selector, patient, hospitalA);
        vm.prank(patient);
        consent.revoke(patient, hospitalA);
    }

    function test_revoke_revertsWhenStranger() public {
        grantAs(patient, hospitalA, LABS);
        _expectRevert(IConsentRegistry.ConsentUnauthorized.selector, patient, stranger);
        vm.prank(stranger);
        consent.revoke(patient, hospitalA);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
    }

    function test_revoke_revertsWhenGranteeRevokes() public {
        grantAs(patient, hospitalA, LABS);
        _expectRevert(IConsentRegistry.ConsentUnauthorized.selector, patient, hospitalA);
        vm.prank(hospitalA);
        consent.revoke(patient, hospitalA);
    }

    function test_revoke_byGuardianWithinScope() public {
        grantAs(patient, hospitalA, LABS);
        _setGuardian(LABS | NOTES, 0, now40() + 30 days);
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.Revoked(patient, hospitalA, guardian, 2, 0);
        vm.prank(guardian);
        consent.revoke(patient, hospitalA);
        _assertNoGrant(patient, hospitalA);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
    }

    function test_revoke_byGuardianOfGrantOutlivingGuardian() public {
        // Revocation has no bound on the grant's expiry, unlike granting.
        grantAs(patient, hospitalA, LABS);
        _setGuardian(LABS, 0, now40() + 1 days);
        vm.prank(guardian);
        consent.revoke(patient, hospitalA);
        _assertNoGrant(patient, hospitalA);
    }

    function test_revoke_revertsWhenGuardianScopeNarrowerThanGrant() public {
        grantAs(patient, hospitalA, LABS | NOTES);
        _setGuardian(LABS, 0, now40() + YEAR);
        _expectRevert(IConsentRegistry.ConsentGuardianOutOfScope.selector, patient, guardian);
        vm.prank(guardian);
        consent.revoke(patient, hospitalA);
        assertEq(consent.readableCategories(hospitalA, patient), LABS | NOTES);
    }

    function test_revoke_revertsWhenGuardianRemoved() public {
        grantAs(patient, hospitalA, LABS);
        _setGuardian(LABS, 0, now40() + YEAR);
        vm.prank(patient);
        consent.removeGuardian(guardian);
        _expectRevert(IConsentRegistry.ConsentUnauthorized.selector, patient, guardian);
        vm.prank(guardian);
        consent.revoke(patient, hospitalA);
    }

    function test_revoke_revertsWhenGuardianExpired() public {
        grantAs(patient, hospitalA, LABS);
        uint40 guardianEnd = now40() + 1 days;
        _setGuardian(LABS, 0, guardianEnd);
        vm.warp(guardianEnd);
        _expectRevert(IConsentRegistry.ConsentUnauthorized.selector, patient, guardian);
        vm.prank(guardian);
        consent.revoke(patient, hospitalA);
    }

    function test_revoke_revertsWhenGuardianNotYetLive() public {
        grantAs(patient, hospitalA, LABS);
        uint40 guardianStart = now40() + 1 days;
        _setGuardian(LABS, guardianStart, guardianStart + 1 days);
        _expectRevert(IConsentRegistry.ConsentUnauthorized.selector, patient, guardian);
        vm.prank(guardian);
        consent.revoke(patient, hospitalA);
    }

    // -------------------------------------------------------------- guardians

    function test_setGuardian_storesAndEmits() public {
        uint40 exp = now40() + YEAR;
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.GuardianSet(patient, guardian, LABS, now40(), exp);
        _setGuardian(LABS, 0, exp);

        IConsentRegistry.Guardian memory gd = consent.guardianOf(patient, guardian);
        assertEq(gd.scope, LABS);
        assertEq(gd.notBefore, now40());
        assertEq(gd.expiresAt, exp);
        // Only the naming patient's mandate exists.
        assertEq(consent.guardianOf(other, guardian).scope, 0);
    }

    function test_setGuardian_renameReplacesMandate() public {
        _setGuardian(LABS, 0, now40() + YEAR);
        uint40 nb = now40() + 1 days;
        uint40 exp = now40() + 10 days;
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.GuardianSet(patient, guardian, NOTES, nb, exp);
        _setGuardian(NOTES, nb, exp);

        IConsentRegistry.Guardian memory gd = consent.guardianOf(patient, guardian);
        assertEq(gd.scope, NOTES);
        assertEq(gd.notBefore, nb);
        assertEq(gd.expiresAt, exp);
        // The old mandate no longer counts: the guardian is not live yet.
        uint40 grantEnd = now40() + 5 days;
        _expectRevert(IConsentRegistry.ConsentUnauthorized.selector, patient, guardian);
        vm.prank(guardian);
        consent.grant(patient, hospitalA, LABS, TREATMENT, 0, grantEnd);
    }

    function test_setGuardian_revertsOnZeroAddress() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentZeroAddress.selector));
        vm.prank(patient);
        consent.setGuardian(address(0), LABS, 0, now40() + YEAR);
    }

    function test_setGuardian_revertsOnSelf() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentSelf.selector));
        vm.prank(patient);
        consent.setGuardian(patient, LABS, 0, now40() + YEAR);
    }

    function test_setGuardian_revertsOnNoScope() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentNoCategories.selector));
        vm.prank(patient);
        consent.setGuardian(guardian, 0, 0, now40() + YEAR);
    }

    function test_setGuardian_revertsOnInvalidWindow() public {
        uint40 nowTs = now40();
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidWindow.selector, nowTs, nowTs)
        );
        vm.prank(patient);
        consent.setGuardian(guardian, LABS, 0, nowTs);

        uint40 nb = nowTs + 2 days;
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidWindow.selector, nb, nb - 1)
        );
        vm.prank(patient);
        consent.setGuardian(guardian, LABS, nb, nb - 1);
    }

    function test_removeGuardian_deletesAndEmits() public {
        _setGuardian(LABS, 0, now40() + YEAR);
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.GuardianRemoved(patient, guardian);
        vm.prank(patient);
        consent.removeGuardian(guardian);

        IConsentRegistry.Guardian memory gd = consent.guardianOf(patient, guardian);
        assertEq(gd.scope, 0);
        assertEq(gd.notBefore, 0);
        assertEq(gd.expiresAt, 0);
    }

    function test_removeGuardian_revertsWhenNotNamed() public {
        _expectRevert(IConsentRegistry.ConsentGuardianNotFound.selector, patient, guardian);
        vm.prank(patient);
        consent.removeGuardian(guardian);
    }

    function test_removeGuardian_revertsForAnotherPatientsGuardian() public {
        _setGuardian(LABS, 0, now40() + YEAR);
        _expectRevert(IConsentRegistry.ConsentGuardianNotFound.selector, other, guardian);
        vm.prank(other);
        consent.removeGuardian(guardian);
        assertEq(consent.guardianOf(patient, guardian).scope, LABS);
    }

    function test_removeGuardian_revertsWhenRemovedTwice() public {
        _setGuardian(LABS, 0, now40() + YEAR);
        vm.prank(patient);
        consent.removeGuardian(guardian);
        _expectRevert(IConsentRegistry.ConsentGuardianNotFound.selector, patient, guardian);
        vm.prank(patient);
        consent.removeGuardian(guardian);
    }

    function test_guardianOf_emptyWhenUnknown() public view {
        IConsentRegistry.Guardian memory gd = consent.guardianOf(patient, stranger);
        assertEq(gd.scope, 0);
        assertEq(gd.notBefore, 0);
        assertEq(gd.expiresAt, 0);
    }

    // ------------------------------------------------------------ break-glass

    function test_openEmergencyAccess_givesAllCategoriesAndEmits() public {
        uint40 nowTs = now40();
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.EmergencyAccessOpened(
            patient, hospitalA, REASON, nowTs, nowTs + 4 hours
        );
        _open(hospitalA, patient, 4 hours);

        IConsentRegistry.EmergencyAccess memory e = consent.emergencyAccessOf(patient, hospitalA);
        assertEq(e.openedAt, nowTs);
        assertEq(e.expiresAt, nowTs + 4 hours);
        assertEq(consent.readableCategories(hospitalA, patient), ALL);
        assertTrue(consent.canRead(hospitalA, patient, 0));
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
        assertTrue(consent.canRead(hospitalA, patient, 63));
        // Other providers and other patients are unaffected.
        assertEq(consent.readableCategories(hospitalB, patient), 0);
        assertEq(consent.readableCategories(hospitalA, other), 0);
    }

    function test_openEmergencyAccess_widensExistingGrant() public {
        grantAs(patient, hospitalA, LABS);
        _open(hospitalA, patient, 1 hours);
        assertEq(consent.readableCategories(hospitalA, patient), ALL);
        vm.warp(block.timestamp + 1 hours);
        assertEq(consent.readableCategories(hospitalA, patient), LABS);
    }

    function test_openEmergencyAccess_endIsExclusive() public {
        uint40 end = now40() + 2 hours;
        _open(hospitalA, patient, 2 hours);
        vm.warp(end - 1);
        assertTrue(consent.canRead(hospitalA, patient, NOTES_CAT));
        vm.warp(end);
        assertFalse(consent.canRead(hospitalA, patient, NOTES_CAT));
        assertEq(consent.readableCategories(hospitalA, patient), 0);
    }

    function test_openEmergencyAccess_acceptsDurationAtCap() public {
        uint40 end = now40() + CAP;
        _open(hospitalA, patient, CAP);
        assertEq(consent.emergencyAccessOf(patient, hospitalA).expiresAt, end);
        vm.warp(end - 1);
        assertTrue(consent.canRead(hospitalA, patient, 0));
        vm.warp(end);
        assertFalse(consent.canRead(hospitalA, patient, 0));
    }

    function test_openEmergencyAccess_revertsAboveCap() public {
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentEmergencyDuration.selector, CAP + 1, CAP)
        );
        _open(hospitalA, patient, CAP + 1);
    }

    function test_openEmergencyAccess_revertsOnZeroDuration() public {
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentEmergencyDuration.selector, 0, CAP)
        );
        _open(hospitalA, patient, 0);
    }

    function test_openEmergencyAccess_revertsWhenNotProvider() public {
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentNotProvider.selector, stranger)
        );
        _open(stranger, patient, 1 hours);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentNotProvider.selector, researcher)
        );
        _open(researcher, patient, 1 hours);
    }

    function test_openEmergencyAccess_revertsWhenCredentialRevoked() public {
        vm.prank(governor);
        participants.revokeCredential(hospitalA);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentNotProvider.selector, hospitalA)
        );
        _open(hospitalA, patient, 1 hours);
    }

    function test_openEmergencyAccess_revokedCredentialCannotRead() public {
        _open(hospitalA, patient, 1 hours);
        vm.prank(governor);
        participants.revokeCredential(hospitalA);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        assertEq(consent.readableCategories(hospitalA, patient), 0);
    }

    function test_openEmergencyAccess_revertsOnZeroPatient() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentZeroAddress.selector));
        _open(hospitalA, address(0), 1 hours);
    }

    function test_openEmergencyAccess_revertsOnSelf() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentSelf.selector));
        _open(hospitalA, hospitalA, 1 hours);
    }

    function test_openEmergencyAccess_revertsOnNoReason() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentNoReason.selector));
        vm.prank(hospitalA);
        consent.openEmergencyAccess(patient, bytes32(0), 1 hours);
    }

    function test_openEmergencyAccess_revertsWhileLive() public {
        uint40 end = now40() + 2 hours;
        _open(hospitalA, patient, 2 hours);
        vm.warp(end - 1);
        _expectRevert(IConsentRegistry.ConsentEmergencyActive.selector, patient, hospitalA);
        _open(hospitalA, patient, 1 hours);
        // The live access is unchanged.
        assertEq(consent.emergencyAccessOf(patient, hospitalA).expiresAt, end);
        // Another provider may still open its own.
        _open(hospitalB, patient, 1 hours);
        assertEq(consent.readableCategories(hospitalB, patient), ALL);
    }

    function test_openEmergencyAccess_reopensAfterExpiry() public {
        uint40 end = now40() + 2 hours;
        _open(hospitalA, patient, 2 hours);
        vm.warp(end);
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.EmergencyAccessOpened(patient, hospitalA, REASON, end, end + 1 hours);
        _open(hospitalA, patient, 1 hours);
        IConsentRegistry.EmergencyAccess memory e = consent.emergencyAccessOf(patient, hospitalA);
        assertEq(e.openedAt, end);
        assertEq(e.expiresAt, end + 1 hours);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
    }

    function test_openEmergencyAccess_reopensAfterClose() public {
        _open(hospitalA, patient, 2 hours);
        // Closed by the provider: a patient's close starts a cooling-off (test/BreakGlass.t.sol).
        vm.prank(hospitalA);
        consent.closeEmergencyAccess(patient, hospitalA);
        _open(hospitalA, patient, 1 hours);
        assertEq(consent.readableCategories(hospitalA, patient), ALL);
    }

    function test_closeEmergencyAccess_byPatient() public {
        _open(hospitalA, patient, 2 hours);
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.EmergencyAccessClosed(patient, hospitalA, patient);
        vm.prank(patient);
        consent.closeEmergencyAccess(patient, hospitalA);

        assertEq(consent.readableCategories(hospitalA, patient), 0);
        IConsentRegistry.EmergencyAccess memory e = consent.emergencyAccessOf(patient, hospitalA);
        assertEq(e.openedAt, 0);
        assertEq(e.expiresAt, 0);
    }

    function test_closeEmergencyAccess_byProvider() public {
        grantAs(patient, hospitalA, LABS);
        _open(hospitalA, patient, 2 hours);
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.EmergencyAccessClosed(patient, hospitalA, hospitalA);
        vm.prank(hospitalA);
        consent.closeEmergencyAccess(patient, hospitalA);
        // Back to the grant alone.
        assertEq(consent.readableCategories(hospitalA, patient), LABS);
    }

    function test_closeEmergencyAccess_revertsForStranger() public {
        _open(hospitalA, patient, 2 hours);
        _expectRevert(IConsentRegistry.ConsentUnauthorized.selector, patient, stranger);
        vm.prank(stranger);
        consent.closeEmergencyAccess(patient, hospitalA);
        // Another provider cannot close it either.
        _expectRevert(IConsentRegistry.ConsentUnauthorized.selector, patient, hospitalB);
        vm.prank(hospitalB);
        consent.closeEmergencyAccess(patient, hospitalA);
        assertEq(consent.readableCategories(hospitalA, patient), ALL);
    }

    function test_closeEmergencyAccess_revertsWhenNeverOpened() public {
        _expectRevert(IConsentRegistry.ConsentEmergencyNotFound.selector, patient, hospitalA);
        vm.prank(patient);
        consent.closeEmergencyAccess(patient, hospitalA);
    }

    function test_closeEmergencyAccess_revertsAfterExpiry() public {
        _open(hospitalA, patient, 2 hours);
        vm.warp(block.timestamp + 2 hours);
        _expectRevert(IConsentRegistry.ConsentEmergencyNotFound.selector, patient, hospitalA);
        vm.prank(hospitalA);
        consent.closeEmergencyAccess(patient, hospitalA);
    }

    function test_closeEmergencyAccess_revertsWhenClosedTwice() public {
        _open(hospitalA, patient, 2 hours);
        vm.prank(patient);
        consent.closeEmergencyAccess(patient, hospitalA);
        // The patient may refuse an ended opening again (BreakGlass.t.sol); the provider may not
        // close it twice.
        _expectRevert(IConsentRegistry.ConsentEmergencyNotFound.selector, patient, hospitalA);
        vm.prank(hospitalA);
        consent.closeEmergencyAccess(patient, hospitalA);
    }

    // ------------------------------------------------------------------- cap

    function test_setEmergencyCap_storesAndEmits() public {
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.EmergencyCapSet(MAX_CAP);
        vm.prank(governor);
        consent.setEmergencyCap(MAX_CAP);
        assertEq(consent.emergencyCap(), MAX_CAP);
        // The new cap governs new openings.
        _open(hospitalA, patient, MAX_CAP);
        assertEq(consent.emergencyAccessOf(patient, hospitalA).expiresAt, now40() + MAX_CAP);
    }

    function test_setEmergencyCap_loweredCapBindsNewOpenings() public {
        vm.prank(governor);
        consent.setEmergencyCap(1 hours);
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentEmergencyDuration.selector, 1 hours + 1, 1 hours
            )
        );
        _open(hospitalA, patient, 1 hours + 1);
    }

    function test_setEmergencyCap_loweredCapLeavesOpenAccessItsWindow() public {
        // Open accesses keep the window they were opened with (bounded by the cap then).
        uint40 opened = now40();
        _open(hospitalA, patient, CAP);
        vm.warp(opened + 3 hours);
        vm.prank(governor);
        consent.setEmergencyCap(1 hours);

        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
        vm.warp(opened + CAP - 1);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
        IConsentRegistry.EmergencyAccess memory e = consent.emergencyAccessOf(patient, hospitalA);
        assertEq(e.openedAt, opened);
        assertEq(e.expiresAt, opened + CAP);
        // Still open: not reopenable, and closable early.
        _expectRevert(IConsentRegistry.ConsentEmergencyActive.selector, patient, hospitalA);
        _open(hospitalA, patient, 1 hours);
        vm.warp(opened + CAP);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        assertEq(consent.readableCategories(hospitalA, patient), 0);
    }

    function test_setEmergencyCap_loweredCapStillClosableEarly() public {
        uint40 opened = now40();
        _open(hospitalA, patient, CAP);
        vm.prank(governor);
        consent.setEmergencyCap(1 hours);
        vm.warp(opened + 2 hours);
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.EmergencyAccessClosed(patient, hospitalA, patient);
        vm.prank(patient);
        consent.closeEmergencyAccess(patient, hospitalA);
        assertEq(consent.readableCategories(hospitalA, patient), 0);
        // A new opening is bound by the lowered cap.
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentEmergencyDuration.selector, 2 hours, 1 hours
            )
        );
        _open(hospitalA, patient, 2 hours);
    }

    function test_setEmergencyCap_lowerThenRaiseDoesNotMoveOpenWindow() public {
        uint40 opened = now40();
        _open(hospitalA, patient, 2 hours);
        vm.prank(governor);
        consent.setEmergencyCap(1 hours);
        vm.warp(opened + 90 minutes);
        vm.prank(governor);
        consent.setEmergencyCap(MAX_CAP);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
        vm.warp(opened + 2 hours);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
    }

    function test_setEmergencyCap_raisedCapDoesNotExtendAccess() public {
        uint40 opened = now40();
        _open(hospitalA, patient, 2 hours);
        vm.prank(governor);
        consent.setEmergencyCap(MAX_CAP);
        vm.warp(opened + 2 hours);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
    }

    function test_setEmergencyCap_revertsOnZero() public {
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidCap.selector, 0, MAX_CAP)
        );
        vm.prank(governor);
        consent.setEmergencyCap(0);
    }

    function test_setEmergencyCap_revertsAboveMax() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentInvalidCap.selector, MAX_CAP + 1, MAX_CAP
            )
        );
        vm.prank(governor);
        consent.setEmergencyCap(MAX_CAP + 1);
        assertEq(consent.emergencyCap(), CAP);
    }

    function test_setEmergencyCap_revertsForNonGovernance() public {
        bytes32 role = consent.GOVERNANCE_ROLE();
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, role
            )
        );
        vm.prank(stranger);
        consent.setEmergencyCap(1 hours);

        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, hospitalA, role
            )
        );
        vm.prank(hospitalA);
        consent.setEmergencyCap(1 hours);
        assertEq(consent.emergencyCap(), CAP);
    }

    // ------------------------------------------------------------------ views

    function test_canRead_falseForCategoryAtLeast64() public {
        grantAs(patient, hospitalA, ALL);
        assertTrue(consent.canRead(hospitalA, patient, 63));
        assertFalse(consent.canRead(hospitalA, patient, 64));
        assertFalse(consent.canRead(hospitalA, patient, 255));
        // Also under break-glass, which reads as all bits.
        _open(hospitalB, patient, 1 hours);
        assertTrue(consent.canRead(hospitalB, patient, 63));
        assertFalse(consent.canRead(hospitalB, patient, 64));
        assertFalse(consent.canRead(hospitalB, patient, 200));
    }

    function test_canRead_falseWithoutGrant() public view {
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        assertEq(consent.readableCategories(hospitalA, patient), 0);
    }

    function test_readableCategories_reflectsGrantMask() public {
        uint64 mask = LABS | NOTES | (uint64(1) << 63) | 1;
        grantAs(patient, hospitalA, mask);
        assertEq(consent.readableCategories(hospitalA, patient), mask);
        assertEq(consent.readableCategories(hospitalB, patient), 0);
    }

    function test_grantedCategories_liveGrantOnly() public {
        uint40 nb = now40() + 1 days;
        uint40 exp = nb + 10 days;
        vm.prank(patient);
        consent.grant(patient, hospitalA, LABS | NOTES, TREATMENT, nb, exp);
        assertEq(consent.grantedCategories(hospitalA, patient), 0);
        vm.warp(nb);
        assertEq(consent.grantedCategories(hospitalA, patient), LABS | NOTES);
        vm.warp(exp - 1);
        assertEq(consent.grantedCategories(hospitalA, patient), LABS | NOTES);
        vm.warp(exp);
        assertEq(consent.grantedCategories(hospitalA, patient), 0);
        assertEq(consent.grantedCategories(hospitalB, patient), 0);
    }

    function test_grantedCategories_ignoresCredential() public {
        // Documented: no credential check (callers check it themselves).
        grantAs(patient, stranger, LABS);
        grantAs(patient, researcher, NOTES);
        assertEq(consent.grantedCategories(stranger, patient), LABS);
        assertEq(consent.grantedCategories(researcher, patient), NOTES);
        assertEq(consent.readableCategories(stranger, patient), 0);
        assertEq(consent.readableCategories(researcher, patient), 0);
    }

    function test_grantedCategories_ignoresBreakGlass() public {
        grantAs(patient, hospitalA, LABS);
        _open(hospitalA, patient, 1 hours);
        _open(hospitalB, patient, 1 hours);
        assertEq(consent.grantedCategories(hospitalA, patient), LABS);
        assertEq(consent.grantedCategories(hospitalB, patient), 0);
        assertEq(consent.readableCategories(hospitalB, patient), ALL);
    }

    function test_grantedCategories_zeroAfterRevoke() public {
        grantAs(patient, hospitalA, LABS);
        vm.prank(patient);
        consent.revoke(patient, hospitalA);
        assertEq(consent.grantedCategories(hospitalA, patient), 0);
    }

    function test_grantOf_emptyWhenUnknown() public view {
        _assertNoGrant(patient, hospitalA);
    }

    function test_emergencyAccessOf_emptyWhenUnknownAndKeptAfterExpiry() public {
        IConsentRegistry.EmergencyAccess memory e = consent.emergencyAccessOf(patient, hospitalA);
        assertEq(e.openedAt, 0);
        assertEq(e.expiresAt, 0);
        uint40 opened = now40();
        _open(hospitalA, patient, 1 hours);
        vm.warp(opened + 1 days);
        e = consent.emergencyAccessOf(patient, hospitalA);
        assertEq(e.openedAt, opened);
        assertEq(e.expiresAt, opened + 1 hours);
    }

    function test_emergencyCap_initialValue() public view {
        assertEq(consent.emergencyCap(), CAP);
    }

    function test_grantOf_epochAndSignedAtFollowSignedAndDirectChanges() public {
        assertEq(epochOf(patient, hospitalA), 0);
        SignedGrant memory g = _signedGrant();
        _grantBySig(g, _signGrant(patientKey, g));
        // A signed change keeps the epoch and records its issuedAt.
        assertEq(epochOf(patient, hospitalA), 0);
        assertEq(consent.grantOf(patient, hospitalA).signedAt, g.issuedAt);
        vm.warp(block.timestamp + 1);
        SignedRevoke memory r = _signedRevoke();
        _revokeBySig(r, _signRevoke(patientKey, r));
        // A signed revocation moves to the next epoch and resets signedAt (issue 14, A2).
        assertEq(epochOf(patient, hospitalA), 1);
        assertEq(consent.grantOf(patient, hospitalA).signedAt, 0);
        // A direct change moves to the next epoch and resets signedAt.
        grantAs(patient, hospitalA, LABS);
        assertEq(epochOf(patient, hospitalA), 2);
        assertEq(consent.grantOf(patient, hospitalA).signedAt, 0);
        // Other relationships are untouched.
        assertEq(epochOf(patient, hospitalB), 0);
        assertEq(epochOf(stranger, hospitalA), 0);
    }

    function test_DOMAIN_SEPARATOR_matchesEip712Domain() public {
        assertEq(consent.DOMAIN_SEPARATOR(), _domainSeparator(block.chainid, address(consent)));
        (, string memory name, string memory version, uint256 chainId, address verifying,,) =
            consent.eip712Domain();
        assertEq(name, "medrec.ConsentRegistry");
        assertEq(version, "1");
        assertEq(chainId, block.chainid);
        assertEq(verifying, address(consent));

        uint256 otherChain = block.chainid + 1;
        vm.chainId(otherChain);
        assertEq(consent.DOMAIN_SEPARATOR(), _domainSeparator(otherChain, address(consent)));
    }

    function test_DOMAIN_SEPARATOR_differsPerContract() public {
        ConsentRegistry second = new ConsentRegistry(governor, participants, CAP);
        assertTrue(second.DOMAIN_SEPARATOR() != consent.DOMAIN_SEPARATOR());
        assertEq(second.DOMAIN_SEPARATOR(), _domainSeparator(block.chainid, address(second)));
    }

    function test_typeHashes_matchSignedStructs() public view {
        assertEq(
            consent.GRANT_TYPEHASH(),
            keccak256(
                "Grant(address patient,address grantee,uint64 categories,uint8 purpose,uint40 notBefore,uint40 expiresAt,address signer,uint24 epoch,uint40 issuedAt,uint256 deadline)"
            )
        );
        assertEq(
            consent.REVOKE_TYPEHASH(),
            keccak256(
                "Revoke(address patient,address grantee,address signer,uint24 epoch,uint40 issuedAt,uint256 deadline)"
            )
        );
        assertEq(
            consent.CANCEL_TYPEHASH(),
            keccak256(
                "CancelSignatures(address patient,address grantee,address signer,uint24 epoch,uint40 issuedAt,uint256 deadline)"
            )
        );
    }

    // -------------------------------------------------------------- grantBySig

    function test_grantBySig_relayedByStranger() public {
        SignedGrant memory g = _signedGrant();
        g.categories = LABS | NOTES;
        bytes memory sig = _signGrant(patientKey, g);
        // The helper's encoding agrees with the Base fixture's.
        assertEq(
            _grantHash(g),
            grantStructHash(
                g.patient,
                g.grantee,
                g.categories,
                g.purpose,
                g.notBefore,
                g.expiresAt,
                g.signer,
                g.epoch,
                g.issuedAt,
                g.deadline
            )
        );

        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.Granted(
            patient,
            hospitalA,
            patient,
            LABS | NOTES,
            TREATMENT,
            now40(),
            g.expiresAt,
            g.epoch,
            g.issuedAt
        );
        vm.prank(stranger);
        _grantBySig(g, sig);

        _assertGrant(patient, hospitalA, LABS | NOTES, TREATMENT, now40(), g.expiresAt);
        assertTrue(consent.canRead(hospitalA, patient, NOTES_CAT));
        assertEq(consent.grantOf(patient, hospitalA).signedAt, g.issuedAt);
        assertEq(consent.grantOf(patient, hospitalA).grantedAt, now40());
    }

    function test_grantBySig_revertsOnWrongSigner() public {
        SignedGrant memory g = _signedGrant();
        bytes memory sig = _signGrant(otherKey, g);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidSignature.selector, patient)
        );
        vm.prank(stranger);
        _grantBySig(g, sig);
        assertEq(consent.grantOf(patient, hospitalA).signedAt, 0);
        _assertNoGrant(patient, hospitalA);
    }

    function test_grantBySig_revertsOnTamperedCategories() public {
        SignedGrant memory g = _signedGrant();
        bytes memory sig = _signGrant(patientKey, g);
        g.categories = LABS | NOTES;
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidSignature.selector, patient)
        );
        _grantBySig(g, sig);
    }

    function test_grantBySig_revertsOnTamperedGrantee() public {
        SignedGrant memory g = _signedGrant();
        bytes memory sig = _signGrant(patientKey, g);
        g.grantee = hospitalB;
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidSignature.selector, patient)
        );
        _grantBySig(g, sig);
    }

    function test_grantBySig_revertsOnTamperedExpiry() public {
        SignedGrant memory g = _signedGrant();
        bytes memory sig = _signGrant(patientKey, g);
        g.expiresAt += 1;
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidSignature.selector, patient)
        );
        _grantBySig(g, sig);
    }

    function test_grantBySig_revertsOnSignatureForDifferentPatient() public {
        // `other` signs a grant over their own records; it is replayed against `patient`.
        SignedGrant memory g = _signedGrant();
        g.patient = other;
        g.signer = other;
        bytes memory sig = _signGrant(otherKey, g);
        g.patient = patient;
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidSignature.selector, other)
        );
        _grantBySig(g, sig);
        _assertNoGrant(patient, hospitalA);
    }

    function test_grantBySig_revertsOnReplay() public {
        SignedGrant memory g = _signedGrant();
        bytes memory sig = _signGrant(patientKey, g);
        _grantBySig(g, sig);
        vm.prank(patient);
        consent.revoke(patient, hospitalA);

        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentSignatureStale.selector, 0, g.issuedAt, 1, 0
            )
        );
        vm.prank(stranger);
        _grantBySig(g, sig);
        _assertNoGrant(patient, hospitalA);
    }

    function test_grantBySig_revertsOnFutureEpoch() public {
        SignedGrant memory g = _signedGrant();
        g.epoch = 5;
        bytes memory sig = _signGrant(patientKey, g);
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentSignatureStale.selector, 5, g.issuedAt, 0, 0
            )
        );
        _grantBySig(g, sig);
    }

    function test_grantBySig_revertsOnSignatureForOtherChainId() public {
        SignedGrant memory g = _signedGrant();
        uint256 otherChain = block.chainid + 1;
        bytes memory sig = _signWithDomain(
            patientKey, _domainSeparator(otherChain, address(consent)), _grantHash(g)
        );
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidSignature.selector, patient)
        );
        _grantBySig(g, sig);
    }

    function test_grantBySig_revertsAfterChainIdChanges() public {
        SignedGrant memory g = _signedGrant();
        bytes memory sig = _signGrant(patientKey, g);
        vm.chainId(block.chainid + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidSignature.selector, patient)
        );
        _grantBySig(g, sig);
    }

    function test_grantBySig_revertsOnSignatureForOtherContract() public {
        ConsentRegistry second = new ConsentRegistry(governor, participants, CAP);
        SignedGrant memory g = _signedGrant();
        bytes memory sig = _signWithDomain(patientKey, second.DOMAIN_SEPARATOR(), _grantHash(g));
        // Valid where it was meant for ...
        second.grantBySig(
            g.patient,
            g.grantee,
            g.categories,
            g.purpose,
            g.notBefore,
            g.expiresAt,
            g.signer,
            g.epoch,
            g.issuedAt,
            g.deadline,
            sig
        );
        assertEq(second.grantOf(patient, hospitalA).categories, LABS);
        // ... but not here.
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidSignature.selector, patient)
        );
        _grantBySig(g, sig);
    }

    function test_grantBySig_revertsPastDeadline() public {
        SignedGrant memory g = _signedGrant();
        bytes memory sig = _signGrant(patientKey, g);
        vm.warp(g.deadline + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentSignatureExpired.selector, g.deadline)
        );
        _grantBySig(g, sig);
    }

    function test_grantBySig_acceptsDeadlineExactlyNow() public {
        SignedGrant memory g = _signedGrant();
        bytes memory sig = _signGrant(patientKey, g);
        vm.warp(g.deadline);
        _grantBySig(g, sig);
        _assertGrant(patient, hospitalA, LABS, TREATMENT, uint40(g.deadline), g.expiresAt);
    }

    function test_grantBySig_revertsOnMalformedSignature() public {
        SignedGrant memory g = _signedGrant();
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidSignature.selector, patient)
        );
        _grantBySig(g, hex"1234");
    }

    function test_grantBySig_revertsWhenSignerIsNotPatientOrGuardian() public {
        SignedGrant memory g = _signedGrant();
        g.signer = other;
        bytes memory sig = _signGrant(otherKey, g);
        _expectRevert(IConsentRegistry.ConsentUnauthorized.selector, patient, other);
        _grantBySig(g, sig);
    }

    function test_grantBySig_revertsOnInvalidContent() public {
        SignedGrant memory g = _signedGrant();
        g.purpose = 0;
        bytes memory sig = _signGrant(patientKey, g);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentNoPurpose.selector));
        _grantBySig(g, sig);
    }

    function test_grantBySig_byGuardianWithinScope() public {
        _setGuardian(LABS | NOTES, 0, now40() + YEAR);
        SignedGrant memory g = _signedGrant();
        g.signer = guardian;
        g.categories = NOTES;
        bytes memory sig = _signGrant(guardianKey, g);

        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.Granted(
            patient,
            hospitalA,
            guardian,
            NOTES,
            TREATMENT,
            now40(),
            g.expiresAt,
            g.epoch,
            g.issuedAt
        );
        vm.prank(stranger);
        _grantBySig(g, sig);
        _assertGrant(patient, hospitalA, NOTES, TREATMENT, now40(), g.expiresAt);
        assertEq(consent.grantOf(patient, hospitalA).signedAt, g.issuedAt);
    }

    function test_grantBySig_revertsWhenGuardianOutOfScope() public {
        _setGuardian(LABS, 0, now40() + YEAR);
        SignedGrant memory g = _signedGrant();
        g.signer = guardian;
        g.categories = NOTES;
        bytes memory sig = _signGrant(guardianKey, g);
        _expectRevert(IConsentRegistry.ConsentGuardianOutOfScope.selector, patient, guardian);
        _grantBySig(g, sig);
    }

    function test_grantBySig_erc1271WalletPatient() public {
        MockWallet wallet = new MockWallet(vm.addr(walletKey));
        SignedGrant memory g = _signedGrant();
        g.patient = address(wallet);
        g.signer = address(wallet);
        bytes memory sig = _signGrant(walletKey, g);

        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.Granted(
            address(wallet),
            hospitalA,
            address(wallet),
            LABS,
            TREATMENT,
            now40(),
            g.expiresAt,
            g.epoch,
            g.issuedAt
        );
        vm.prank(stranger);
        _grantBySig(g, sig);
        _assertGrant(address(wallet), hospitalA, LABS, TREATMENT, now40(), g.expiresAt);
        assertTrue(consent.canRead(hospitalA, address(wallet), LABS_CAT));
        assertEq(consent.grantOf(address(wallet), hospitalA).signedAt, g.issuedAt);
    }

    function test_grantBySig_revertsOnInvalidErc1271Signature() public {
        MockWallet wallet = new MockWallet(vm.addr(walletKey));
        SignedGrant memory g = _signedGrant();
        g.patient = address(wallet);
        g.signer = address(wallet);
        // Signed by a key that does not own the wallet.
        bytes memory sig = _signGrant(otherKey, g);
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentInvalidSignature.selector, address(wallet)
            )
        );
        _grantBySig(g, sig);
        // The owner's own EOA signature does not count as the wallet's over other content.
        g.categories = NOTES;
        bytes memory stale = _signGrant(walletKey, _signedGrantFor(address(wallet)));
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentInvalidSignature.selector, address(wallet)
            )
        );
        _grantBySig(g, stale);
        assertEq(consent.grantOf(address(wallet), hospitalA).signedAt, 0);
    }

    function _signedGrantFor(address p) internal view returns (SignedGrant memory g) {
        g = _signedGrant();
        g.patient = p;
        g.signer = p;
    }

    // ------------------------------------------------------------- revokeBySig

    function test_revokeBySig_relayedByStranger() public {
        grantAs(patient, hospitalA, LABS);
        SignedRevoke memory r = _signedRevoke();
        bytes memory sig = _signRevoke(patientKey, r);
        assertEq(
            _revokeHash(r),
            revokeStructHash(r.patient, r.grantee, r.signer, r.epoch, r.issuedAt, r.deadline)
        );

        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.Revoked(patient, hospitalA, patient, r.epoch + 1, 0);
        vm.prank(stranger);
        _revokeBySig(r, sig);
        _assertNoGrant(patient, hospitalA);
        assertFalse(consent.canRead(hospitalA, patient, LABS_CAT));
        // A signed revocation moves to the next epoch, like a direct one.
        assertEq(consent.grantOf(patient, hospitalA).signedAt, 0);
        assertEq(epochOf(patient, hospitalA), r.epoch + 1);
    }

    function test_revokeBySig_revertsOnWrongSigner() public {
        grantAs(patient, hospitalA, LABS);
        SignedRevoke memory r = _signedRevoke();
        bytes memory sig = _signRevoke(otherKey, r);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidSignature.selector, patient)
        );
        _revokeBySig(r, sig);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
    }

    function test_revokeBySig_revertsOnTamperedGrantee() public {
        grantAs(patient, hospitalA, LABS);
        grantAs(patient, hospitalB, LABS);
        SignedRevoke memory r = _signedRevoke();
        bytes memory sig = _signRevoke(patientKey, r);
        r.grantee = hospitalB;
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidSignature.selector, patient)
        );
        _revokeBySig(r, sig);
    }

    function test_revokeBySig_revertsOnReplay() public {
        grantAs(patient, hospitalA, LABS);
        SignedRevoke memory r = _signedRevoke();
        bytes memory sig = _signRevoke(patientKey, r);
        _revokeBySig(r, sig);
        grantAs(patient, hospitalA, LABS);

        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentSignatureStale.selector, 1, r.issuedAt, 3, 0
            )
        );
        vm.prank(stranger);
        _revokeBySig(r, sig);
        assertTrue(consent.canRead(hospitalA, patient, LABS_CAT));
    }

    function test_revokeBySig_revertsOnSignatureForOtherChainId() public {
        grantAs(patient, hospitalA, LABS);
        SignedRevoke memory r = _signedRevoke();
        bytes memory sig = _signWithDomain(
            patientKey, _domainSeparator(block.chainid + 1, address(consent)), _revokeHash(r)
        );
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidSignature.selector, patient)
        );
        _revokeBySig(r, sig);
    }

    function test_revokeBySig_revertsOnSignatureForOtherContract() public {
        grantAs(patient, hospitalA, LABS);
        ConsentRegistry second = new ConsentRegistry(governor, participants, CAP);
        SignedRevoke memory r = _signedRevoke();
        bytes memory sig = _signWithDomain(patientKey, second.DOMAIN_SEPARATOR(), _revokeHash(r));
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentInvalidSignature.selector, patient)
        );
        _revokeBySig(r, sig);
    }

    function test_revokeBySig_revertsPastDeadline() public {
        grantAs(patient, hospitalA, LABS);
        SignedRevoke memory r = _signedRevoke();
        bytes memory sig = _signRevoke(patientKey, r);
        vm.warp(r.deadline + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentSignatureExpired.selector, r.deadline)
        );
        _revokeBySig(r, sig);
    }

    function test_revokeBySig_acceptsDeadlineExactlyNow() public {
        grantAs(patient, hospitalA, LABS);
        SignedRevoke memory r = _signedRevoke();
        bytes memory sig = _signRevoke(patientKey, r);
        vm.warp(r.deadline);
        _revokeBySig(r, sig);
        _assertNoGrant(patient, hospitalA);
    }

    /// @dev Behaviour changed with per-relationship ordering: a signed revocation without a
    /// grant applies (it moves the epoch, so a grant signed before it cannot follow it).
    function test_revokeBySig_withoutGrantRecordsItsTime() public {
        SignedRevoke memory r = _signedRevoke();
        bytes memory sig = _signRevoke(patientKey, r);
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.Revoked(patient, hospitalA, patient, r.epoch + 1, 0);
        _revokeBySig(r, sig);
        _assertNoGrant(patient, hospitalA);
        // A signed revocation moves to the next epoch, like a direct one.
        assertEq(consent.grantOf(patient, hospitalA).signedAt, 0);
        assertEq(epochOf(patient, hospitalA), r.epoch + 1);
    }

    function test_revokeBySig_byGuardianWithinScope() public {
        grantAs(patient, hospitalA, LABS);
        _setGuardian(LABS, 0, now40() + 1 days);
        SignedRevoke memory r = _signedRevoke();
        r.signer = guardian;
        bytes memory sig = _signRevoke(guardianKey, r);
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.Revoked(patient, hospitalA, guardian, r.epoch + 1, 0);
        vm.prank(stranger);
        _revokeBySig(r, sig);
        _assertNoGrant(patient, hospitalA);
        // A signed revocation moves to the next epoch, like a direct one.
        assertEq(consent.grantOf(patient, hospitalA).signedAt, 0);
        assertEq(epochOf(patient, hospitalA), r.epoch + 1);
    }

    function test_revokeBySig_revertsWhenGuardianScopeNarrowerThanGrant() public {
        grantAs(patient, hospitalA, LABS | NOTES);
        _setGuardian(LABS, 0, now40() + 1 days);
        SignedRevoke memory r = _signedRevoke();
        r.signer = guardian;
        bytes memory sig = _signRevoke(guardianKey, r);
        _expectRevert(IConsentRegistry.ConsentGuardianOutOfScope.selector, patient, guardian);
        _revokeBySig(r, sig);
    }

    function test_revokeBySig_erc1271WalletPatient() public {
        MockWallet wallet = new MockWallet(vm.addr(walletKey));
        grantAs(address(wallet), hospitalA, LABS);
        SignedRevoke memory r = _signedRevoke();
        r.patient = address(wallet);
        r.signer = address(wallet);
        r.epoch = epochOf(address(wallet), hospitalA);

        bytes memory bad = _signRevoke(otherKey, r);
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentInvalidSignature.selector, address(wallet)
            )
        );
        _revokeBySig(r, bad);

        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.Revoked(address(wallet), hospitalA, address(wallet), r.epoch + 1, 0);
        _revokeBySig(r, _signRevoke(walletKey, r));
        _assertNoGrant(address(wallet), hospitalA);
    }

    // ------------------------------------------------------------------- fuzz

    function testFuzz_grant_canReadMatchesMask(uint64 mask, uint8 category) public {
        vm.assume(mask != 0);
        grantAs(patient, hospitalA, mask);
        bool expected = category < 64 && (mask >> category) & 1 == 1;
        assertEq(consent.canRead(hospitalA, patient, category), expected);
        assertEq(consent.readableCategories(hospitalA, patient), mask);
        assertEq(consent.grantedCategories(hospitalA, patient), mask);
        // No one else reads.
        assertFalse(consent.canRead(hospitalB, patient, category));
        assertFalse(consent.canRead(researcher, patient, category));
    }

    function testFuzz_grant_windowSemantics(uint256 start, uint256 length, uint256 at) public {
        uint40 t0 = now40();
        // A credential that outlives every window, so only the grant's window matters.
        vm.prank(governor);
        participants.issueCredential(
            hospitalA, IParticipantRegistry.Role.Provider, keccak256("licence A"), t0 + 10 * YEAR
        );
        uint40 nb = uint40(bound(start, t0 - YEAR, t0 + YEAR));
        uint40 base = nb > t0 ? nb : t0;
        uint40 exp = base + uint40(bound(length, 1, YEAR));
        vm.prank(patient);
        consent.grant(patient, hospitalA, LABS, TREATMENT, nb, exp);
        _assertGrant(patient, hospitalA, LABS, TREATMENT, nb, exp);

        uint256 t = bound(at, t0, uint256(exp) + YEAR);
        vm.warp(t);
        bool live = nb <= t && t < exp;
        assertEq(consent.canRead(hospitalA, patient, LABS_CAT), live);
        assertEq(consent.readableCategories(hospitalA, patient), live ? LABS : 0);
        assertEq(consent.grantedCategories(hospitalA, patient), live ? LABS : 0);
    }

    function testFuzz_revoke_noReadAfterRevoke(
        uint64 mask,
        uint8 category,
        uint256 before,
        uint256 afterwards,
        bool byGuardian
    ) public {
        vm.assume(mask != 0);
        grantAs(patient, hospitalA, mask);
        if (byGuardian) _setGuardian(ALL, 0, now40() + 2 * YEAR);
        vm.warp(block.timestamp + bound(before, 0, YEAR - 1));

        address by = byGuardian ? guardian : patient;
        vm.expectEmit(true, true, true, true, address(consent));
        emit IConsentRegistry.Revoked(patient, hospitalA, by, 2, 0);
        vm.prank(by);
        consent.revoke(patient, hospitalA);

        assertFalse(consent.canRead(hospitalA, patient, category));
        assertEq(consent.readableCategories(hospitalA, patient), 0);
        assertEq(consent.grantedCategories(hospitalA, patient), 0);
        _assertNoGrant(patient, hospitalA);
        vm.warp(block.timestamp + bound(afterwards, 0, 2 * YEAR));
        assertFalse(consent.canRead(hospitalA, patient, category));
        assertEq(consent.readableCategories(hospitalA, patient), 0);
        assertEq(consent.grantedCategories(hospitalA, patient), 0);
    }

    function testFuzz_grantBySig_anySignedGrantApplies(
        uint64 mask,
        uint8 purpose,
        uint256 length,
        uint8 category
    ) public {
        vm.assume(mask != 0 && purpose != 0);
        SignedGrant memory g = _signedGrant();
        g.categories = mask;
        g.purpose = purpose;
        g.expiresAt = now40() + uint40(bound(length, 1, YEAR - 1));
        _grantBySig(g, _signGrant(patientKey, g));
        _assertGrant(patient, hospitalA, mask, purpose, now40(), g.expiresAt);
        assertEq(
            consent.canRead(hospitalA, patient, category),
            category < 64 && (mask >> category) & 1 == 1
        );
    }

    /// @dev Break-glass is live exactly while `now < openedAt + duration`, where `duration` was
    /// at most the cap in force at opening: so never beyond min(duration, cap at opening), and two
    /// arbitrary cap changes at arbitrary times neither extend nor resurrect it.
    function testFuzz_openEmergencyAccess_neverLiveBeyondDurationOrCap(
        uint256 duration,
        uint256 cap1,
        uint256 at1,
        uint256 cap2,
        uint256 at2,
        uint256 at3
    ) public {
        uint40 d = uint40(bound(duration, 1, CAP));
        uint40 opened = now40();
        _open(hospitalA, patient, d);
        assertLe(d, CAP);
        _assertBreakGlass(opened, d);

        vm.warp(bound(at1, opened, opened + 2 * MAX_CAP));
        vm.prank(governor);
        consent.setEmergencyCap(uint40(bound(cap1, 1, MAX_CAP)));
        _assertBreakGlass(opened, d);

        vm.warp(bound(at2, block.timestamp, opened + 2 * MAX_CAP));
        _assertBreakGlass(opened, d);
        vm.prank(governor);
        consent.setEmergencyCap(uint40(bound(cap2, 1, MAX_CAP)));
        _assertBreakGlass(opened, d);

        vm.warp(bound(at3, block.timestamp, opened + 2 * MAX_CAP));
        _assertBreakGlass(opened, d);
        vm.warp(opened + d);
        _assertBreakGlass(opened, d);
    }

    /// @dev Whatever the cap changes, a new opening is bounded by the cap in force at opening.
    function testFuzz_openEmergencyAccess_boundedByCapAtOpening(
        uint256 cap,
        uint256 duration,
        uint256 laterCap,
        uint256 at
    ) public {
        uint40 c = uint40(bound(cap, 1, MAX_CAP));
        vm.prank(governor);
        consent.setEmergencyCap(c);

        uint40 tooLong = uint40(bound(duration, uint256(c) + 1, type(uint40).max));
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentEmergencyDuration.selector, tooLong, c)
        );
        _open(hospitalA, patient, tooLong);

        uint40 d = uint40(bound(duration, 1, c));
        uint40 opened = now40();
        _open(hospitalA, patient, d);
        assertEq(consent.emergencyAccessOf(patient, hospitalA).expiresAt, opened + d);
        vm.prank(governor);
        consent.setEmergencyCap(uint40(bound(laterCap, 1, MAX_CAP)));
        vm.warp(bound(at, opened, opened + 2 * MAX_CAP));
        _assertBreakGlass(opened, d);
        assertTrue(block.timestamp < uint256(opened) + c || !consent.canRead(hospitalA, patient, 0));
    }

    function _assertBreakGlass(uint40 opened, uint40 duration) internal {
        bool live = block.timestamp < uint256(opened) + duration;
        assertEq(consent.canRead(hospitalA, patient, LABS_CAT), live, "canRead");
        assertEq(consent.readableCategories(hospitalA, patient), live ? ALL : 0, "readable");
        assertEq(consent.grantedCategories(hospitalA, patient), 0, "granted");
        if (live) {
            _expectRevert(IConsentRegistry.ConsentEmergencyActive.selector, patient, hospitalA);
            _open(hospitalA, patient, 1);
        } else {
            // The provider: the patient may still refuse a recent ended opening.
            _expectRevert(IConsentRegistry.ConsentEmergencyNotFound.selector, patient, hospitalA);
            vm.prank(hospitalA);
            consent.closeEmergencyAccess(patient, hospitalA);
        }
    }
}
