// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IConsentRegistry} from "./interfaces/IConsentRegistry.sol";
import {IParticipantRegistry} from "./interfaces/IParticipantRegistry.sol";
import {IRecordRegistry} from "./interfaces/IRecordRegistry.sol";

/// @title RecordRegistry
/// @notice Record pointers anchored by their holders. See {IRecordRegistry}.
/// @dev OpenZeppelin's {EIP712} holds the gatekeeper's domain (name and version in immutables,
/// the separator cached and rebuilt after a chain split) and answers ERC-5267; the registry
/// verifies no signature itself.
contract RecordRegistry is IRecordRegistry, EIP712 {
    /// @notice Longest locator accepted, in bytes.
    uint256 public constant MAX_LOCATOR_LENGTH = 256;
    /// @notice Most pointers in one {anchorBatch}.
    uint256 public constant MAX_BATCH = 200;
    /// @notice Most entries one {anchorAccessLog} may add to the holder's last anchored count:
    /// far above what a gatekeeper logs between two anchors, and 2**32 anchors short of the
    /// largest count, so a leaked service key cannot end the holder's anchoring in one call.
    uint64 public constant MAX_LOG_GROWTH = 2 ** 32;

    /// @notice Where credentials are checked.
    IParticipantRegistry public immutable participants;
    /// @notice Where the holder's relationship to the patient is checked.
    IConsentRegistry public immutable consent;

    mapping(bytes32 recordId => bytes32 commitment) private _commitments;
    mapping(bytes32 recordId => bytes32 newRecordId) private _supersededBy;
    mapping(address holder => LogAnchor) private _logAnchors;
    mapping(address holder => Gatekeeper) private _gatekeepers;
    // Written only for pointers anchored under break-glass, so ordinary anchors pay nothing.
    mapping(bytes32 recordId => bool) private _breakGlass;

    constructor(IParticipantRegistry participants_, IConsentRegistry consent_)
        EIP712("medrec.Gatekeeper", "1")
    {
        participants = participants_;
        consent = consent_;
    }

    /// @inheritdoc IRecordRegistry
    function registerHolder(string calldata endpoint, address serviceKey) external {
        _requireProvider();
        uint256 len = bytes(endpoint).length;
        if (len == 0 || len > MAX_LOCATOR_LENGTH) revert RecordInvalidEndpoint(len);
        if (serviceKey == address(0)) revert RecordZeroServiceKey();
        _gatekeepers[msg.sender] = Gatekeeper({endpoint: endpoint, serviceKey: serviceKey});
        emit HolderRegistered(msg.sender, endpoint, serviceKey);
    }

    /// @inheritdoc IRecordRegistry
    function gatekeeperOf(address holder) external view returns (Gatekeeper memory) {
        return _gatekeepers[holder];
    }

    /// @inheritdoc IRecordRegistry
    function anchor(Pointer calldata p, bytes32 supersededHash) external {
        _requireProvider();
        uint64 granted = consent.grantedCategories(msg.sender, p.patient);
        uint64 readable = _covers(granted, p.category)
            ? granted
            : consent.readableCategories(msg.sender, p.patient);
        bytes32 commitment = _anchor(p, granted, readable);
        if (p.supersedes != bytes32(0)) {
            bytes32 old = p.supersedes;
            if (
                old == p.recordId || _supersededBy[old] != bytes32(0)
                    || _commitments[old]
                        != _commitment(p.patient, msg.sender, p.category, supersededHash)
            ) revert RecordInvalidSupersede(old);
            _supersededBy[old] = p.recordId;
            emit PointerSuperseded(old, p.recordId);
        }
        _commitments[p.recordId] = commitment;
    }

    /// @inheritdoc IRecordRegistry
    function anchorBatch(Pointer[] calldata ps) external {
        uint256 n = ps.length;
        if (n == 0 || n > MAX_BATCH) revert RecordInvalidBatch(n);
        _requireProvider();
        // Records of a batch usually belong to few patients: ask the consent registry for the
        // grant once per run of the same patient, and for break-glass only when the grant does
        // not cover a category.
        address lastPatient = address(0);
        uint64 granted = 0;
        uint64 readable = 0;
        for (uint256 i; i < n; ++i) {
            Pointer calldata p = ps[i];
            if (p.supersedes != bytes32(0)) revert RecordInvalidSupersede(p.supersedes);
            if (i == 0 || p.patient != lastPatient) {
                lastPatient = p.patient;
                granted = consent.grantedCategories(msg.sender, p.patient);
                readable = granted;
            }
            if (!_covers(readable, p.category)) {
                readable = consent.readableCategories(msg.sender, p.patient);
            }
            _commitments[p.recordId] = _anchor(p, granted, readable);
        }
    }

    /// @inheritdoc IRecordRegistry
    function anchorAccessLog(address holder, bytes32 head, uint64 entries) external {
        if (!participants.isCredentialed(holder, IParticipantRegistry.Role.Provider)) {
            revert RecordNotProvider(holder);
        }
        if (msg.sender != holder && msg.sender != _gatekeepers[holder].serviceKey) {
            revert RecordNotHolderKey(msg.sender, holder);
        }
        uint64 previous = _logAnchors[holder].entries;
        if (head == bytes32(0) || entries <= previous) {
            revert RecordInvalidLogAnchor(entries, previous);
        }
        if (entries - previous > MAX_LOG_GROWTH) revert RecordLogGrowthTooLarge(entries, previous);
        uint40 nowTs = uint40(block.timestamp);
        _logAnchors[holder] = LogAnchor({head: head, entries: entries, anchoredAt: nowTs});
        emit AccessLogAnchored(holder, head, entries, nowTs);
    }

    /// @inheritdoc IRecordRegistry
    function accessLogOf(address holder) external view returns (LogAnchor memory) {
        return _logAnchors[holder];
    }

    /// @inheritdoc IRecordRegistry
    function pointerOf(bytes32 recordId)
        external
        view
        returns (bytes32 commitment, bytes32 supersededBy)
    {
        return (_commitments[recordId], _supersededBy[recordId]);
    }

    /// @inheritdoc IRecordRegistry
    function anchoredUnderBreakGlass(bytes32 recordId) external view returns (bool) {
        return _breakGlass[recordId];
    }

    /// @inheritdoc IRecordRegistry
    function recordIdOf(address holder, address patient, bytes32 contentHash)
        external
        pure
        returns (bytes32)
    {
        return _recordId(holder, patient, contentHash);
    }

    /// @inheritdoc IRecordRegistry
    function verifyPointer(
        bytes32 recordId,
        address patient,
        address holder,
        uint8 category,
        bytes32 contentHash
    ) external view returns (bool) {
        bytes32 stored = _commitments[recordId];
        return stored != bytes32(0) && stored == _commitment(patient, holder, category, contentHash);
    }

    /// @inheritdoc IRecordRegistry
    function commitmentOf(address patient, address holder, uint8 category, bytes32 contentHash)
        external
        pure
        returns (bytes32)
    {
        return _commitment(patient, holder, category, contentHash);
    }

    /// @inheritdoc IRecordRegistry
    function eip712Domain()
        public
        view
        override(IRecordRegistry, EIP712)
        returns (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        )
    {
        return super.eip712Domain();
    }

    /// @notice The EIP-712 domain separator of gatekeeper messages on this chain.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @dev Checks `p` against the caller's `granted` categories of its patient and those it
    /// may `readable` now (grant or break-glass), marks a break-glass anchor and emits its
    /// event; returns the commitment for the caller to store.
    function _anchor(Pointer calldata p, uint64 granted, uint64 readable)
        private
        returns (bytes32)
    {
        if (p.recordId == bytes32(0)) revert RecordZeroId();
        if (p.patient == address(0)) revert RecordZeroPatient();
        if (p.contentHash == bytes32(0)) revert RecordZeroHash();
        if (p.category > 63) revert RecordInvalidCategory(p.category);
        uint256 len = bytes(p.locator).length;
        if (len == 0 || len > MAX_LOCATOR_LENGTH) revert RecordInvalidLocator(len);
        if (!_covers(readable, p.category)) {
            revert RecordNoRelationship(msg.sender, p.patient, p.category);
        }
        // Checked before existence: another holder's id is refused as not bound to the caller,
        // so the attempt names what is wrong rather than the victim's record.
        bytes32 expected = _recordId(msg.sender, p.patient, p.contentHash);
        if (p.recordId != expected) revert RecordIdNotBound(p.recordId, expected);
        if (_commitments[p.recordId] != bytes32(0)) revert RecordExists(p.recordId);
        emit PointerAnchored(
            p.recordId, p.patient, msg.sender, p.category, p.contentHash, p.locator
        );
        if (!_covers(granted, p.category)) {
            _breakGlass[p.recordId] = true;
            emit PointerAnchoredUnderBreakGlass(p.recordId, p.patient, msg.sender);
        }
        return _commitment(p.patient, msg.sender, p.category, p.contentHash);
    }

    function _recordId(address holder, address patient, bytes32 contentHash)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(holder, patient, contentHash));
    }

    function _covers(uint64 mask, uint8 category) private pure returns (bool) {
        return category < 64 && mask & (uint64(1) << category) != 0;
    }

    function _requireProvider() private view {
        if (!participants.isCredentialed(msg.sender, IParticipantRegistry.Role.Provider)) {
            revert RecordNotProvider(msg.sender);
        }
    }

    function _commitment(address patient, address holder, uint8 category, bytes32 contentHash)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(patient, holder, category, contentHash));
    }
}
