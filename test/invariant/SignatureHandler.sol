// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Test} from "forge-std/Test.sol";
import {ConsentRegistry} from "../../contracts/ConsentRegistry.sol";

/// @notice Signs grants, revocations and cancellations for a few relationships, relays them in
/// any order, interleaved with direct changes, and keeps a model of the ordering rule: a signed
/// message applies only in its relationship's epoch, after the last one applied and at most the
/// skew ahead of the block time; a direct change, a revocation or a cancellation moves to the
/// next epoch, and a cancellation also revokes a grant applied from a signature.
contract SignatureHandler is Test {
    ConsentRegistry public immutable consent;

    uint256[2] internal keys = [uint256(0xA11CE), 0xB0B0];
    address[2] public grantees = [address(0x1001), address(0x1002)];
    uint64 internal constant LABS = 1 << 3;

    /// Kinds of signed message.
    uint8 internal constant GRANT = 0;
    uint8 internal constant REVOKE = 1;
    uint8 internal constant CANCEL = 2;

    struct Message {
        uint8 kind;
        uint256 key;
        address grantee;
        uint24 epoch;
        uint40 issuedAt;
        uint40 expiresAt;
        uint256 deadline;
        bytes signature;
    }

    struct Model {
        uint24 epoch;
        uint40 signedAt;
        bool granted;
        /// The grant came from a signature of the current epoch.
        bool signedGrant;
    }

    Message[] internal messages;
    mapping(address patient => mapping(address grantee => Model)) public model;
    /// Stale messages (other epoch, or not after the last applied) that were accepted.
    uint256 public staleAccepted;
    /// Messages the rule allowed that were refused.
    uint256 public validRefused;
    uint256 public applied;

    constructor(ConsentRegistry consent_) {
        consent = consent_;
    }

    function patientOf(uint256 i) public view returns (address) {
        return vm.addr(keys[i]);
    }

    function warp(uint256 secs) external {
        vm.warp(block.timestamp + bound(secs, 0, 2 hours));
    }

    /// Signs a message in the relationship's current epoch, issued up to an hour before or
    /// after now (a signer's clock is its own).
    function sign(uint256 kindSeed, uint256 who, uint256 skew) external {
        uint256 key = keys[who % 2];
        address patient = vm.addr(key);
        address grantee = grantees[(who >> 8) % 2];
        uint8 kind = uint8(kindSeed % 3);
        Message memory m = Message({
            kind: kind,
            key: key,
            grantee: grantee,
            epoch: consent.grantOf(patient, grantee).epoch,
            issuedAt: uint40(
                bound(block.timestamp + skew % 7200, block.timestamp, block.timestamp + 7200) - 3600
            ),
            expiresAt: uint40(block.timestamp + 365 days),
            deadline: block.timestamp + 1 days,
            signature: ""
        });
        bytes32 structHash = kind == GRANT
            ? keccak256(
                abi.encode(
                    consent.GRANT_TYPEHASH(),
                    patient,
                    grantee,
                    LABS,
                    uint8(1),
                    uint40(0),
                    m.expiresAt,
                    patient,
                    m.epoch,
                    m.issuedAt,
                    m.deadline
                )
            )
            : keccak256(
                abi.encode(
                    kind == REVOKE ? consent.REVOKE_TYPEHASH() : consent.CANCEL_TYPEHASH(),
                    patient,
                    grantee,
                    patient,
                    m.epoch,
                    m.issuedAt,
                    m.deadline
                )
            );
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(
            key, keccak256(abi.encodePacked("\x19\x01", consent.DOMAIN_SEPARATOR(), structHash))
        );
        m.signature = abi.encodePacked(r, s, v);
        messages.push(m);
    }

    /// Relays any message signed so far, replays included, in any order.
    function relay(uint256 seed) external {
        if (messages.length == 0) return;
        Message memory m = messages[seed % messages.length];
        address patient = vm.addr(m.key);
        Model storage md = model[patient][m.grantee];
        bool inOrder = m.epoch == md.epoch && m.issuedAt > md.signedAt
            && m.issuedAt <= block.timestamp + consent.MAX_SIGNATURE_SKEW();
        bool allowed = inOrder && block.timestamp <= m.deadline
            && (m.kind != GRANT || block.timestamp < m.expiresAt);
        bool ok = _send(m, patient);
        if (ok && !inOrder) staleAccepted++;
        if (!ok && allowed) validRefused++;
        if (!ok) return;
        applied++;
        if (m.kind == GRANT) {
            md.signedAt = m.issuedAt;
            md.granted = true;
            md.signedGrant = true;
            return;
        }
        // A revocation, and a cancellation of a signed grant, leave no grant.
        if (m.kind == REVOKE || md.signedGrant) md.granted = false;
        md.epoch++;
        md.signedAt = 0;
        md.signedGrant = false;
    }

    function _send(Message memory m, address patient) internal returns (bool) {
        if (m.kind == GRANT) return _sendGrant(m, patient);
        if (m.kind == REVOKE) {
            try consent.revokeBySig(
                patient, m.grantee, patient, m.epoch, m.issuedAt, m.deadline, m.signature
            ) {
                return true;
            } catch {
                return false;
            }
        }
        try consent.cancelBySig(
            patient, m.grantee, patient, m.epoch, m.issuedAt, m.deadline, m.signature
        ) {
            return true;
        } catch {
            return false;
        }
    }

    function _sendGrant(Message memory m, address patient) internal returns (bool) {
        try consent.grantBySig(
            patient,
            m.grantee,
            LABS,
            1,
            0,
            m.expiresAt,
            patient,
            m.epoch,
            m.issuedAt,
            m.deadline,
            m.signature
        ) {
            return true;
        } catch {
            return false;
        }
    }

    /// A direct grant, revocation or cancellation by the patient: the next epoch.
    function direct(uint256 kindSeed, uint256 who) external {
        address patient = patientOf(who % 2);
        address grantee = grantees[(who >> 8) % 2];
        Model storage md = model[patient][grantee];
        uint256 kind = kindSeed % 3;
        vm.prank(patient);
        if (kind == GRANT) {
            consent.grant(patient, grantee, LABS, 1, 0, uint40(block.timestamp + 365 days));
            md.granted = true;
        } else if (kind == REVOKE) {
            if (!md.granted) return;
            consent.revoke(patient, grantee);
            md.granted = false;
        } else {
            consent.cancelSignatures(patient, grantee);
            if (md.signedGrant) md.granted = false;
        }
        md.epoch++;
        md.signedAt = 0;
        md.signedGrant = false;
    }
}
