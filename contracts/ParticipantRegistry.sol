// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IParticipantRegistry} from "./interfaces/IParticipantRegistry.sol";

/// @title ParticipantRegistry
/// @notice Credentials of providers and researchers, issued and revoked by governance.
contract ParticipantRegistry is IParticipantRegistry, AccessControl {
    /// @notice The consortium's governance role: issues and revokes credentials.
    bytes32 public constant GOVERNANCE_ROLE = keccak256("GOVERNANCE_ROLE");

    // Storage: role, issuedAt, expiresAt, revoked and validSince pack into one slot; ref takes
    // the second.
    mapping(address account => Credential) private _credentials;

    /// @param admin receives the admin and governance roles
    constructor(address admin) {
        if (admin == address(0)) revert ParticipantZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GOVERNANCE_ROLE, admin);
    }

    /// @inheritdoc IParticipantRegistry
    function issueCredential(address account, Role role, bytes32 ref, uint40 expiresAt)
        external
        onlyRole(GOVERNANCE_ROLE)
    {
        if (account == address(0)) revert ParticipantZeroAddress();
        if (role == Role.None) revert ParticipantInvalidRole();
        if (ref == bytes32(0)) revert ParticipantEmptyReference();
        uint40 nowTs = uint40(block.timestamp);
        if (expiresAt <= nowTs) revert ParticipantExpiryInPast(expiresAt, nowTs);
        Credential storage c = _credentials[account];
        // A renewal keeps the run going; after a revocation, a lapse or a change of role the
        // account starts afresh, so consent given to it before does not come back. A new run
        // after an earlier credential starts a second after now: a grant made in this very
        // second (perhaps earlier in this block, before the revocation) must not count either.
        Role before = c.role;
        uint40 validSince;
        if (before == role && _isLive(c)) validSince = c.validSince;
        else if (before == Role.None) validSince = nowTs;
        else validSince = nowTs + 1;
        _credentials[account] = Credential({
            role: role,
            issuedAt: nowTs,
            expiresAt: expiresAt,
            revoked: false,
            validSince: validSince,
            ref: ref
        });
        emit CredentialIssued(account, role, ref, nowTs, expiresAt);
    }

    /// @inheritdoc IParticipantRegistry
    function revokeCredential(address account) external onlyRole(GOVERNANCE_ROLE) {
        Credential storage c = _credentials[account];
        Role role = c.role;
        if (!_isLive(c)) revert ParticipantNotCredentialed(account);
        c.revoked = true;
        emit CredentialRevoked(account, role, uint40(block.timestamp));
    }

    /// @inheritdoc IParticipantRegistry
    function isCredentialed(address account, Role role) external view returns (bool) {
        Credential storage c = _credentials[account];
        return role != Role.None && c.role == role && _isLive(c);
    }

    /// @inheritdoc IParticipantRegistry
    function validSinceOf(address account) external view returns (uint40) {
        return _credentials[account].validSince;
    }

    /// @inheritdoc IParticipantRegistry
    function credentialOf(address account) external view returns (Credential memory) {
        return _credentials[account];
    }

    function _isLive(Credential storage c) private view returns (bool) {
        return c.role != Role.None && !c.revoked && block.timestamp < c.expiresAt;
    }
}
