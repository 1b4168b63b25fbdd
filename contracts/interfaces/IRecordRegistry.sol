// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IERC5267} from "@openzeppelin/contracts/interfaces/IERC5267.sol";

/// @title IRecordRegistry
/// @notice Pointers to records that stay with their holders. Nothing on chain says what a
/// record is: a pointer carries a hiding commitment to its opening, never the category or the
/// content hash, and no function takes either in calldata (calldata is public).
/// @dev A pointer is stored as one slot, its commitment
/// `keccak256(abi.encode(patient, holder, category, contentHash, salt))`, where `contentHash` is
/// the SHA-256 of the record's bytes and `salt` 32 random bytes its holder chose for that record
/// and keeps with it. Without the salt no guess of a category or of a document can be checked
/// against a commitment. The holder's gatekeeper serves the opening (category, salt) with the
/// bytes to whoever it lets read them; the reader recomputes the commitment and compares it with
/// {pointerOf}. Clients compute commitments themselves (medrec-protocol's `records` module): a
/// view taking the opening would hand it to the node that answers the call.
///
/// A record id is bound to its holder and its commitment: it must be
/// `keccak256(abi.encode(holder, patient, commitment))`, so no provider can take the id of
/// another holder's record first, and an amendment proves that the record it supersedes is the
/// caller's and the same patient's from the stored commitment and this formula alone.
///
/// Trade-off of hiding the category: anchoring needs a live relationship of the holder with the
/// patient, a grant of any category or break-glass (`readableCategories(holder, patient) != 0`),
/// but the registry can no longer check that the relationship covers the record's category, nor
/// that an amendment keeps its record's category: it cannot see either. So a holder with a grant
/// of one category can anchor a pointer of another; what it anchors is still its own claim, under
/// its own name, which the patient sees with its category in the holder's listing, and reads stay
/// enforced by the gatekeeper against the category it keeps, which the reader checks against the
/// commitment. A pointer anchored with no live grant at all (break-glass only) is
/// marked by {PointerAnchoredUnderBreakGlass} and {anchoredUnderBreakGlass}, for the patient to
/// review. Nothing is deleted: an amendment anchors a new pointer that supersedes an earlier one
/// of the same holder and patient.
///
/// Each holder registers here the endpoint of its gatekeeper and the gatekeeper's own service
/// key ({registerHolder}): requesters read records only at the registered endpoint, never at a
/// URL taken from a locator, and the service key anchors the holder's access log without
/// sharing the holder's nonces.
///
/// The registry also names the EIP-712 domain of the messages that holders' gatekeepers verify
/// off chain (uploads, record, research and access-log requests): it verifies none of them
/// itself, but {eip712Domain} (ERC-5267) lets any client discover that domain from the chain.
interface IRecordRegistry is IERC5267 {
    /// @notice A pointer to anchor.
    /// @param recordId `keccak256(abi.encode(holder, patient, commitment))`
    /// @param patient whose record it is
    /// @param commitment `keccak256(abi.encode(patient, holder, category, contentHash, salt))`
    /// @param locator the holder's own opaque reference to the record, naming nothing but the
    /// record id (the gatekeeper's `<base>/v1/records/<id>`); clients never dereference it (they
    /// read at the holder's registered endpoint)
    /// @param supersedes id of the record this one amends, or zero
    struct Pointer {
        bytes32 recordId;
        address patient;
        bytes32 commitment;
        string locator;
        bytes32 supersedes;
    }

    /// @notice Emitted for every anchored pointer; with {PointerSuperseded} for amendments and
    /// {PointerAnchoredUnderBreakGlass}, it holds everything needed to rebuild the registry, and
    /// nothing about the record but its commitment.
    event PointerAnchored(
        bytes32 indexed recordId,
        address indexed patient,
        address indexed holder,
        bytes32 commitment,
        string locator
    );

    /// @notice Emitted right after the {PointerAnchored} of `recordId` when its holder had no
    /// live grant of the patient at all and only break-glass let it anchor: the patient should
    /// review such a pointer. A separate event so that ordinary anchors pay nothing for the mark.
    event PointerAnchoredUnderBreakGlass(
        bytes32 indexed recordId, address indexed patient, address indexed holder
    );

    /// @notice Emitted when the holder of `recordId` erased it: its gatekeeper destroyed the
    /// record's data key; the pointer stays, marked, and says nothing else.
    event PointerErased(bytes32 indexed recordId);

    /// @notice Emitted, after the new record's {PointerAnchored}, when it amends `oldRecordId`.
    event PointerSuperseded(bytes32 indexed oldRecordId, bytes32 indexed newRecordId);

    /// @notice Emitted when `holder` anchors the head of its gatekeeper's access log: the
    /// chained hash after its first `entries` entries.
    event AccessLogAnchored(
        address indexed holder, bytes32 head, uint64 entries, uint40 anchoredAt
    );

    /// @notice Emitted when `holder` registers (or changes) its gatekeeper's endpoint and
    /// service key.
    event HolderRegistered(address indexed holder, string endpoint, address indexed serviceKey);

    /// @notice A holder's gatekeeper, as the holder registered it.
    /// @param endpoint the base URL requesters read the holder's records at
    /// @param serviceKey the gatekeeper's own key, allowed to anchor the holder's access log
    struct Gatekeeper {
        string endpoint;
        address serviceKey;
    }

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
    /// @notice The commitment is zero.
    error RecordZeroCommitment();
    /// @notice The locator is empty or longer than `MAX_LOCATOR_LENGTH`.
    error RecordInvalidLocator(uint256 length);
    /// @notice `recordId` is not `keccak256(abi.encode(holder, patient, commitment))`, the id
    /// `expected` for the caller as holder.
    error RecordIdNotBound(bytes32 recordId, bytes32 expected);
    /// @notice The endpoint is empty or longer than `MAX_LOCATOR_LENGTH`.
    error RecordInvalidEndpoint(uint256 length);
    /// @notice The service key is the zero address.
    error RecordZeroServiceKey();
    /// @notice `sender` is neither `holder` nor the service key `holder` registered.
    error RecordNotHolderKey(address sender, address holder);
    /// @notice `recordId` is already anchored.
    error RecordExists(bytes32 recordId);
    /// @notice The caller is not a credentialed provider.
    error RecordNotProvider(address holder);
    /// @notice The holder has no live grant of `patient` (of any category) and no break-glass.
    error RecordNoRelationship(address holder, address patient);
    /// @notice The superseded record is unknown, not the caller's, of another patient, the new
    /// record itself, or already superseded (an erased one reverts {RecordErased}).
    error RecordInvalidSupersede(bytes32 supersedes);
    /// @notice `recordId` is not a record of the caller for `patient` (unknown, or its id is not
    /// `keccak256(abi.encode(caller, patient, commitment))` for its stored commitment).
    error RecordNotHolder(bytes32 recordId);
    /// @notice `recordId` was erased: it cannot be erased again nor amended.
    error RecordErased(bytes32 recordId);
    /// @notice The batch is empty or above `MAX_BATCH`.
    error RecordInvalidBatch(uint256 length);
    /// @notice An access-log anchor that is empty or shorter than the holder's last one.
    error RecordInvalidLogAnchor(uint64 entries, uint64 previous);
    /// @notice An access-log anchor that adds more than `MAX_LOG_GROWTH` entries to the holder's
    /// last anchored count `previous`.
    error RecordLogGrowthTooLarge(uint64 entries, uint64 previous);

    /// @notice Registers the caller's gatekeeper: the endpoint requesters read its records at
    /// and the service key that may anchor its access log. A later call replaces both.
    /// Requirements: caller is a credentialed provider; endpoint of 1..MAX_LOCATOR_LENGTH
    /// bytes; non-zero service key.
    /// Emits {HolderRegistered}.
    function registerHolder(string calldata endpoint, address serviceKey) external;

    /// @notice The gatekeeper `holder` registered (empty endpoint and zero key if none).
    function gatekeeperOf(address holder) external view returns (Gatekeeper memory);

    /// @notice Anchors one pointer with the caller as holder.
    /// Requirements: caller is a credentialed provider with a live relationship with
    /// `p.patient` (a grant of any category, or break-glass); non-zero patient and commitment;
    /// `p.recordId` is `keccak256(abi.encode(caller, p.patient, p.commitment))`; locator of
    /// 1..MAX_LOCATOR_LENGTH bytes; id not anchored; if `p.supersedes` is non-zero, it names
    /// another anchored record whose id is `keccak256(abi.encode(caller, p.patient, c))` for its
    /// stored commitment `c` (the caller's, of the same patient), not yet superseded nor erased.
    /// Emits {PointerAnchored}, then {PointerAnchoredUnderBreakGlass} when the caller had no
    /// live grant of the patient, and {PointerSuperseded} for an amendment.
    function anchor(Pointer calldata p) external;

    /// @notice Anchors up to `MAX_BATCH` pointers (none superseding) with the caller as holder,
    /// all or none.
    /// Requirements: as {anchor} for each pointer, with `supersedes` zero.
    /// Emits {PointerAnchored} for each, each followed by {PointerAnchoredUnderBreakGlass} when
    /// the caller had no live grant of its patient.
    function anchorBatch(Pointer[] calldata ps) external;

    /// @notice Marks the caller's record `recordId` of `patient` erased (its holder destroyed
    /// the record's data key off chain). Ownership is proven by the id formula with the stored
    /// commitment: nothing about the record is disclosed. The pointer stays (its id is never
    /// anchored again) and cannot be amended; no credential is needed, so that a holder whose
    /// credential lapsed can still erase what it anchored.
    /// Requirements: `recordId` is anchored and is `keccak256(abi.encode(caller, patient,
    /// commitment))` for its stored commitment; not erased yet.
    /// Emits {PointerErased}.
    function erase(bytes32 recordId, address patient) external;

    /// @notice Whether `recordId` was erased by its holder.
    function erased(bytes32 recordId) external view returns (bool);

    /// @notice Anchors the head of `holder`'s access log; a log only grows. The log stays the
    /// holder's whoever of its keys sends it.
    /// Requirements: `holder` is a credentialed provider; caller is `holder` or the service key
    /// it registered; `head` non-zero; `entries` greater than the holder's last anchored count,
    /// by at most `MAX_LOG_GROWTH`.
    /// Emits {AccessLogAnchored}.
    function anchorAccessLog(address holder, bytes32 head, uint64 entries) external;

    /// @notice The latest access-log head `holder` anchored (zero if none).
    function accessLogOf(address holder) external view returns (LogAnchor memory);

    /// @notice The commitment stored for `recordId` (zero if unknown) and the id of the record
    /// that superseded it (zero if none).
    function pointerOf(bytes32 recordId)
        external
        view
        returns (bytes32 commitment, bytes32 supersededBy);

    /// @notice Whether `recordId` was anchored under break-glass (its holder had no live grant
    /// of the patient then).
    function anchoredUnderBreakGlass(bytes32 recordId) external view returns (bool);

    /// @notice The id a record of `patient` with `commitment` has at `holder`:
    /// `keccak256(abi.encode(holder, patient, commitment))`.
    function recordIdOf(address holder, address patient, bytes32 commitment)
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
