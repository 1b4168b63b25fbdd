// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IERC5267} from "@openzeppelin/contracts/interfaces/IERC5267.sol";

/// @title IRecordRegistry
/// @notice Pointers to records that stay with their holders: where a record lives and what it
/// hashes to. No health information goes on chain: the locator is opaque to this contract.
/// @dev To keep anchoring at one storage slot per pointer, a pointer is stored as a commitment
/// `keccak256(abi.encode(patient, holder, category, contentHash))`; the full pointer (with its
/// locator) is in the {PointerAnchored} event. A verifier takes the fields from the event (or
/// the indexer) and checks them with {verifyPointer}. Nothing is deleted: an amendment anchors a
/// new pointer that supersedes an earlier one of the same holder, patient and category.
///
/// The registry also names the EIP-712 domain of the messages that holders' gatekeepers verify
/// off chain (uploads, record, research and access-log requests): it verifies none of them
/// itself, but {eip712Domain} (ERC-5267) lets any client discover that domain from the chain.
interface IRecordRegistry is IERC5267 {
    /// @notice A pointer to anchor.
    /// @param recordId the holder-chosen, globally unique record id (non-zero)
    /// @param patient whose record it is
    /// @param category the record's category, 0..63 (bit of the consent mask)
    /// @param contentHash SHA-256 of the record's exact bytes
    /// @param locator opaque address of the record at its holder (e.g. a URL)
    /// @param supersedes id of the record this one amends, or zero
    struct Pointer {
        bytes32 recordId;
        address patient;
        uint8 category;
        bytes32 contentHash;
        string locator;
        bytes32 supersedes;
    }

    /// @notice Emitted for every anchored pointer; with {PointerSuperseded} for amendments, it
    /// holds everything needed to rebuild the registry.
    event PointerAnchored(
        bytes32 indexed recordId,
        address indexed patient,
        address indexed holder,
        uint8 category,
        bytes32 contentHash,
        string locator
    );

    /// @notice Emitted, after the new record's {PointerAnchored}, when it amends `oldRecordId`.
    event PointerSuperseded(bytes32 indexed oldRecordId, bytes32 indexed newRecordId);

    /// @notice Emitted when `holder` anchors the head of its gatekeeper's access log: the
    /// chained hash after its first `entries` entries.
    event AccessLogAnchored(
        address indexed holder, bytes32 head, uint64 entries, uint40 anchoredAt
    );

    /// @notice The latest access-log head a holder anchored.
    struct LogAnchor {
        bytes32 head;
        uint64 entries;
        uint40 anchoredAt;
    }

    /// @notice A record id is zero.
    error RecordZeroId();
    /// @notice The patient is the zero address.
    error RecordZeroPatient();
    /// @notice The content hash is zero.
    error RecordZeroHash();
    /// @notice The locator is empty or longer than `MAX_LOCATOR_LENGTH`.
    error RecordInvalidLocator(uint256 length);
    /// @notice The category is above 63.
    error RecordInvalidCategory(uint8 category);
    /// @notice `recordId` is already anchored.
    error RecordExists(bytes32 recordId);
    /// @notice The caller is not a credentialed provider.
    error RecordNotProvider(address holder);
    /// @notice The holder has no live grant covering `category` of `patient` and no break-glass.
    error RecordNoRelationship(address holder, address patient, uint8 category);
    /// @notice The superseded record is unknown, not the caller's, of another patient or
    /// category, or already superseded.
    error RecordInvalidSupersede(bytes32 supersedes);
    /// @notice The batch is empty or above `MAX_BATCH`.
    error RecordInvalidBatch(uint256 length);
    /// @notice An access-log anchor that is empty or shorter than the holder's last one.
    error RecordInvalidLogAnchor(uint64 entries, uint64 previous);

    /// @notice Anchors one pointer with the caller as holder.
    /// Requirements: caller is a credentialed provider who may read `p.category` of `p.patient`
    /// now (a grant or break-glass); non-zero id, patient and hash; category <= 63; locator of
    /// 1..MAX_LOCATOR_LENGTH bytes; id not anchored; if `p.supersedes` is non-zero, it names a
    /// record of the caller, same patient and category, not yet superseded, and
    /// `supersededHash` is its content hash.
    /// Emits {PointerAnchored}, and {PointerSuperseded} for an amendment.
    function anchor(Pointer calldata p, bytes32 supersededHash) external;

    /// @notice Anchors up to `MAX_BATCH` pointers (none superseding) with the caller as holder,
    /// all or none.
    /// Requirements: as {anchor} for each pointer, with `supersedes` zero.
    /// Emits {PointerAnchored} for each.
    function anchorBatch(Pointer[] calldata ps) external;

    /// @notice Anchors the head of the caller's access log; a log only grows.
    /// Requirements: caller is a credentialed provider; `head` non-zero; `entries` greater than
    /// the caller's last anchored count.
    /// Emits {AccessLogAnchored}.
    function anchorAccessLog(bytes32 head, uint64 entries) external;

    /// @notice The latest access-log head `holder` anchored (zero if none).
    function accessLogOf(address holder) external view returns (LogAnchor memory);

    /// @notice The commitment stored for `recordId` (zero if unknown) and the id of the record
    /// that superseded it (zero if none).
    function pointerOf(bytes32 recordId)
        external
        view
        returns (bytes32 commitment, bytes32 supersededBy);

    /// @notice Whether `recordId` is anchored with exactly these fields.
    function verifyPointer(
        bytes32 recordId,
        address patient,
        address holder,
        uint8 category,
        bytes32 contentHash
    ) external view returns (bool);

    /// @notice The commitment for these fields, as stored by {anchor}.
    function commitmentOf(address patient, address holder, uint8 category, bytes32 contentHash)
        external
        pure
        returns (bytes32);

    /// @notice The EIP-712 domain of gatekeeper messages for this deployment (ERC-5267):
    /// `fields` is `0x0f` (name, version, chainId, verifyingContract), `name` is
    /// "medrec.Gatekeeper", `version` is "1", `chainId` is the current chain's id and
    /// `verifyingContract` is this registry; `salt` is zero and `extensions` empty.
    /// A gatekeeper checks every signed request against this domain, so a client that signs
    /// with it needs no other configuration than this contract's address.
    function eip712Domain()
        external
        view
        override
        returns (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        );
}
