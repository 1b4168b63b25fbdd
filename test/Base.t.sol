// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Test} from "forge-std/Test.sol";
import {ParticipantRegistry} from "../contracts/ParticipantRegistry.sol";
import {ConsentRegistry} from "../contracts/ConsentRegistry.sol";
import {RecordRegistry} from "../contracts/RecordRegistry.sol";
import {IParticipantRegistry} from "../contracts/interfaces/IParticipantRegistry.sol";
import {IConsentRegistry} from "../contracts/interfaces/IConsentRegistry.sol";
import {IRecordRegistry} from "../contracts/interfaces/IRecordRegistry.sol";

/// @notice Shared fixture: the three registries deployed, a governor, two credentialed
/// providers, a researcher, patients with known keys, and helpers to sign EIP-712 messages.
abstract contract Base is Test {
    ParticipantRegistry internal participants;
    ConsentRegistry internal consent;
    RecordRegistry internal records;

    address internal governor = makeAddr("governor");
    address internal hospitalA = makeAddr("hospitalA");
    address internal hospitalB = makeAddr("hospitalB");
    address internal researcher = makeAddr("researcher");
    address internal stranger = makeAddr("stranger");

    uint256 internal patientKey = 0xA11CE;
    address internal patient = vm.addr(0xA11CE);
    uint256 internal guardianKey = 0xB0B;
    address internal guardian = vm.addr(0xB0B);

    uint40 internal constant CAP = 24 hours;
    uint40 internal constant YEAR = 365 days;
    uint8 internal constant TREATMENT = 1;
    uint64 internal constant LABS = 1 << 3;
    uint64 internal constant NOTES = 1 << 8;
    uint8 internal constant LABS_CAT = 3;
    uint8 internal constant NOTES_CAT = 8;

    function setUp() public virtual {
        vm.warp(1_800_000_000);
        participants = new ParticipantRegistry(governor);
        consent = new ConsentRegistry(governor, participants, CAP);
        records = new RecordRegistry(participants, consent);
        vm.startPrank(governor);
        participants.issueCredential(
            hospitalA, IParticipantRegistry.Role.Provider, keccak256("licence A"), now40() + YEAR
        );
        participants.issueCredential(
            hospitalB, IParticipantRegistry.Role.Provider, keccak256("licence B"), now40() + YEAR
        );
        participants.issueCredential(
            researcher, IParticipantRegistry.Role.Researcher, keccak256("irb"), now40() + YEAR
        );
        vm.stopPrank();
    }

    function now40() internal view returns (uint40) {
        return uint40(block.timestamp);
    }

    /// @dev `patient` grants `grantee` the given categories for treatment, for a year.
    function grantAs(address p, address grantee, uint64 categories) internal {
        vm.prank(p);
        consent.grant(p, grantee, categories, TREATMENT, 0, now40() + YEAR);
    }

    /// @dev The commitment a pointer carries: keccak256(abi.encode(patient, holder, category,
    /// contentHash, salt)).
    function recordCommitment(address p, address holder, uint8 category, bytes32 hash, bytes32 salt)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(p, holder, category, hash, salt));
    }

    /// @dev The salt tests give a record of `hash` and `category`: any fixed value will do.
    function saltOf(uint8 category, bytes32 hash) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", category, hash));
    }

    /// @dev A pointer `holder` anchors for a record of `p` with this category and content hash,
    /// its commitment salted by {saltOf} and its id bound to holder, patient and commitment.
    function pointer(address holder, address p, uint8 category, bytes32 hash)
        internal
        pure
        returns (IRecordRegistry.Pointer memory)
    {
        bytes32 c = recordCommitment(p, holder, category, hash, saltOf(category, hash));
        return IRecordRegistry.Pointer({
            recordId: keccak256(abi.encode(holder, p, c)),
            patient: p,
            commitment: c,
            locator: "https://hospital-a.example/records/1",
            supersedes: bytes32(0)
        });
    }

    function digest(bytes32 structHash) internal view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", consent.DOMAIN_SEPARATOR(), structHash));
    }

    function grantStructHash(
        address p,
        address grantee,
        uint64 categories,
        uint8 purpose,
        uint40 notBefore,
        uint40 expiresAt,
        address signer,
        uint24 epoch,
        uint40 issuedAt,
        uint256 deadline
    ) internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                consent.GRANT_TYPEHASH(),
                p,
                grantee,
                categories,
                purpose,
                notBefore,
                expiresAt,
                signer,
                epoch,
                issuedAt,
                deadline
            )
        );
    }

    function revokeStructHash(
        address p,
        address grantee,
        address signer,
        uint24 epoch,
        uint40 issuedAt,
        uint256 deadline
    ) internal view returns (bytes32) {
        return keccak256(
            abi.encode(consent.REVOKE_TYPEHASH(), p, grantee, signer, epoch, issuedAt, deadline)
        );
    }

    /// @dev The signature epoch of (`p`, `grantee`) now.
    function epochOf(address p, address grantee) internal view returns (uint24) {
        return consent.grantOf(p, grantee).epoch;
    }

    function sign(uint256 key, bytes32 structHash) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest(structHash));
        return abi.encodePacked(r, s, v);
    }
}
