// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Test} from "forge-std/Test.sol";
import {ConsentRegistry} from "../../contracts/ConsentRegistry.sol";
import {RecordRegistry} from "../../contracts/RecordRegistry.sol";
import {IConsentRegistry} from "../../contracts/interfaces/IConsentRegistry.sol";
import {IRecordRegistry} from "../../contracts/interfaces/IRecordRegistry.sol";

/// @notice Drives the registries with random actors, times and arguments, and keeps a model
/// of what the chain must hold. Calls that the rules forbid are attempted too: if one of them
/// succeeded, the chain would drift from the model and an invariant would fail.
contract Handler is Test {
    ConsentRegistry public immutable consent;
    RecordRegistry public immutable records;
    address public immutable governor;

    address[] public patients;
    address[] public providers; // credentialed
    address[] public others; // strangers, a researcher

    struct ModelGrant {
        uint64 categories;
        uint40 notBefore;
        uint40 expiresAt;
    }

    struct ModelGuardian {
        uint64 scope;
        uint40 notBefore;
        uint40 expiresAt;
    }

    struct ModelEmergency {
        uint40 openedAt;
        uint40 deadline; // openedAt + duration
        uint40 capAtOpen;
    }

    struct ModelPointer {
        address patient;
        address holder;
        uint8 category;
        bytes32 contentHash;
        bytes32 salt;
    }

    mapping(address => mapping(address => ModelGrant)) public grants;
    mapping(address => mapping(address => ModelGuardian)) public guardians;
    mapping(address => mapping(address => ModelEmergency)) public emergencies;
    mapping(bytes32 => ModelPointer) public pointers;
    bytes32[] public recordIds;
    uint256 public unauthorizedSucceeded;

    constructor(
        ConsentRegistry consent_,
        RecordRegistry records_,
        address governor_,
        address[] memory patients_,
        address[] memory providers_,
        address[] memory others_
    ) {
        consent = consent_;
        records = records_;
        governor = governor_;
        patients = patients_;
        providers = providers_;
        others = others_;
    }

    function patientCount() external view returns (uint256) {
        return patients.length;
    }

    function providerCount() external view returns (uint256) {
        return providers.length;
    }

    function recordCount() external view returns (uint256) {
        return recordIds.length;
    }

    function _anyone(uint256 seed) internal view returns (address) {
        uint256 n = patients.length + providers.length + others.length;
        uint256 i = seed % n;
        if (i < patients.length) return patients[i];
        i -= patients.length;
        if (i < providers.length) return providers[i];
        return others[i - providers.length];
    }

    function _now() internal view returns (uint40) {
        return uint40(block.timestamp);
    }

    /// @dev What the model says `actor` may do to `patient`'s grants of `categories` until `until`.
    function _mayAct(address actor, address patient, uint64 categories, uint40 until)
        internal
        view
        returns (bool)
    {
        if (actor == patient) return true;
        ModelGuardian memory g = guardians[patient][actor];
        return g.scope != 0 && _now() >= g.notBefore && _now() < g.expiresAt
            && categories & ~g.scope == 0 && until <= g.expiresAt;
    }

    // ------------------------------------------------------------------ actions

    function warp(uint256 secs) external {
        vm.warp(block.timestamp + bound(secs, 1, 30 days));
    }

    function grant(
        uint256 actorSeed,
        uint256 patientSeed,
        uint256 granteeSeed,
        uint64 categories,
        uint40 startIn,
        uint40 duration
    ) external {
        address patient = patients[patientSeed % patients.length];
        address actor = actorSeed % 3 == 0 ? patient : _anyone(actorSeed);
        address grantee = providers[granteeSeed % providers.length];
        categories = categories == 0 ? 1 : categories;
        uint40 notBefore = startIn % 3 == 0 ? 0 : _now() + uint40(bound(startIn, 0, 10 days));
        uint40 start = notBefore == 0 ? _now() : notBefore;
        uint40 expiresAt = start + uint40(bound(duration, 1, 60 days));
        bool allowed = _mayAct(actor, patient, categories, expiresAt);
        vm.prank(actor);
        try consent.grant(patient, grantee, categories, 1, notBefore, expiresAt) {
            if (!allowed) unauthorizedSucceeded++;
            grants[patient][grantee] = ModelGrant(categories, start, expiresAt);
        } catch {}
    }

    function revoke(uint256 actorSeed, uint256 patientSeed, uint256 granteeSeed) external {
        address patient = patients[patientSeed % patients.length];
        address actor = actorSeed % 3 == 0 ? patient : _anyone(actorSeed);
        address grantee = providers[granteeSeed % providers.length];
        bool allowed = _mayAct(actor, patient, grants[patient][grantee].categories, 0);
        vm.prank(actor);
        try consent.revoke(patient, grantee) {
            if (!allowed) unauthorizedSucceeded++;
            delete grants[patient][grantee];
        } catch {}
    }

    function setGuardian(uint256 patientSeed, uint256 guardianSeed, uint64 scope, uint40 duration)
        external
    {
        address patient = patients[patientSeed % patients.length];
        address guardian = _anyone(guardianSeed);
        scope = scope == 0 ? 1 : scope;
        uint40 expiresAt = _now() + uint40(bound(duration, 1, 90 days));
        vm.prank(patient);
        try consent.setGuardian(guardian, scope, 0, expiresAt) {
            guardians[patient][guardian] = ModelGuardian(scope, _now(), expiresAt);
        } catch {}
    }

    function removeGuardian(uint256 patientSeed, uint256 guardianSeed) external {
        address patient = patients[patientSeed % patients.length];
        address guardian = _anyone(guardianSeed);
        vm.prank(patient);
        try consent.removeGuardian(guardian) {
            delete guardians[patient][guardian];
        } catch {}
    }

    function openEmergency(uint256 providerSeed, uint256 patientSeed, uint40 duration) external {
        address provider = providers[providerSeed % providers.length];
        address patient = patients[patientSeed % patients.length];
        uint40 cap = consent.emergencyCap();
        // Past the cap half of the time: such an opening must fail.
        duration = uint40(bound(duration, 1, 2 * uint256(cap)));
        vm.prank(provider);
        try consent.openEmergencyAccess(patient, keccak256("reason"), duration) {
            if (duration > cap) unauthorizedSucceeded++;
            emergencies[patient][provider] = ModelEmergency(_now(), _now() + duration, cap);
        } catch {}
    }

    function closeEmergency(uint256 actorSeed, uint256 providerSeed, uint256 patientSeed) external {
        address provider = providers[providerSeed % providers.length];
        address patient = patients[patientSeed % patients.length];
        address actor = actorSeed % 2 == 0 ? patient : provider;
        vm.prank(actor);
        try consent.closeEmergencyAccess(patient, provider) {
            delete emergencies[patient][provider];
        } catch {}
    }

    function setCap(uint40 cap) external {
        cap = uint40(bound(cap, 1 hours, 7 days));
        vm.prank(governor);
        consent.setEmergencyCap(cap);
    }

    function anchor(
        uint256 holderSeed,
        uint256 patientSeed,
        uint8 category,
        bytes32 contentHash,
        uint256 idSeed
    ) external {
        address holder = providers[holderSeed % providers.length];
        address patient = patients[patientSeed % patients.length];
        category = uint8(bound(category, 0, 63));
        // Reuse an existing id half of the time: it must never be overwritten.
        bytes32 salt = keccak256(abi.encode(idSeed, contentHash));
        bytes32 c = keccak256(abi.encode(patient, holder, category, contentHash, salt));
        bytes32 id = recordIds.length > 0 && idSeed % 2 == 0
            ? recordIds[idSeed % recordIds.length]
            : keccak256(abi.encode(holder, patient, c));
        IRecordRegistry.Pointer memory p = IRecordRegistry.Pointer({
            recordId: id,
            patient: patient,
            commitment: c,
            locator: "https://holder.example/r",
            supersedes: bytes32(0)
        });
        vm.prank(holder);
        try records.anchor(p) {
            if (pointers[id].holder != address(0)) unauthorizedSucceeded++;
            pointers[id] = ModelPointer(patient, holder, category, contentHash, salt);
            recordIds.push(id);
        } catch {}
    }
}
