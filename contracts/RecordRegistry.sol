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
    // Written only by {erase}.
    mapping(bytes32 recordId => bool) private _erased;

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
    function anchor(Pointer calldata p) external {
        _requireProvider();
        uint64 granted = consent.grantedCategories(msg.sender, p.patient);
        _anchor(p, granted, granted != 0 || _breakGlassOpen(p.patient));
        if (p.supersedes != bytes32(0)) {
            bytes32 old = p.supersedes;
            bytes32 oldCommitment = _commitments[old];
            // The id formula binds the old record to its holder and patient through its stored
            // commitment: proof of ownership with nothing disclosed.
            if (
                old == p.recordId || oldCommitment == bytes32(0) || _supersededBy[old] != bytes32(0)
                    || _recordId(msg.sender, p.patient, oldCommitment) != old
            ) revert RecordInvalidSupersede(old);
            if (_erased[old]) revert RecordErased(old);
            _supersededBy[old] = p.recordId;
            emit PointerSuperseded(old, p.recordId);
        }
    }

    /// @inheritdoc IRecordRegistry
    function anchorBatch(Pointer[] calldata ps) external {
        uint256 n = ps.length;
        if (n == 0 || n > MAX_BATCH) revert RecordInvalidBatch(n);
        _requireProvider();
        // Records of a batch usually belong to few patients: ask the consent registry once per
        // run of the same patient, and for break-glass only when there is no grant.
        address lastPatient = address(0);
        uint64 granted = 0;
        bool related = false;
        for (uint256 i; i < n; ++i) {
            Pointer calldata p = ps[i];
            if (p.supersedes != bytes32(0)) revert RecordInvalidSupersede(p.supersedes);
            if (i == 0 || p.patient != lastPatient) {
                lastPatient = p.patient;
                granted = consent.grantedCategories(msg.sender, p.patient);
                related = granted != 0 || _breakGlassOpen(p.patient);
            }
            _anchor(p, granted, related);
        }
    }

    /// @inheritdoc IRecordRegistry
    function erase(bytes32 recordId, address patient) external {
        bytes32 c = _commitments[recordId];
        if (c == bytes32(0) || _recordId(msg.sender, patient, c) != recordId) {
            revert RecordNotHolder(recordId);
        }
        if (_erased[recordId]) revert RecordErased(recordId);
        _erased[recordId] = true;
        emit PointerErased(recordId);
    }

    /// @inheritdoc IRecordRegistry
    function erased(bytes32 recordId) external view returns (bool) {
        return _erased[recordId];
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
    function recordIdOf(address holder, address patient, bytes32 commitment)
        external
        pure
        returns (bytes32)
    {
        return _recordId(holder, patient, commitment);
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

    /// @dev Checks `p`, with `granted` the categories the caller holds of its patient by a
    /// live grant and `related` whether it may read any of them now (a grant or break-glass);
    /// stores its commitment, marks a break-glass anchor and emits the events.
    function _anchor(Pointer calldata p, uint64 granted, bool related) private {
        if (p.recordId == bytes32(0)) revert RecordZeroId();
        if (p.patient == address(0)) revert RecordZeroPatient();
        if (p.commitment == bytes32(0)) revert RecordZeroCommitment();
        uint256 len = bytes(p.locator).length;
        if (len == 0 || len > MAX_LOCATOR_LENGTH) revert RecordInvalidLocator(len);
        if (!related) revert RecordNoRelationship(msg.sender, p.patient);
        // Checked before existence: another holder's id is refused as not bound to the caller,
        // so the attempt names what is wrong rather than the victim's record.
        bytes32 expected = _recordId(msg.sender, p.patient, p.commitment);
        if (p.recordId != expected) revert RecordIdNotBound(p.recordId, expected);
        if (_commitments[p.recordId] != bytes32(0)) revert RecordExists(p.recordId);
        _commitments[p.recordId] = p.commitment;
        emit PointerAnchored(p.recordId, p.patient, msg.sender, p.commitment, p.locator);
        if (granted == 0) {
            _breakGlass[p.recordId] = true;
            emit PointerAnchoredUnderBreakGlass(p.recordId, p.patient, msg.sender);
        }
    }

    /// @dev Whether the caller may read some category of `patient` now without a grant, i.e.
    /// under break-glass (asked only when it holds no live grant).
    function _breakGlassOpen(address patient) private view returns (bool) {
        return consent.readableCategories(msg.sender, patient) != 0;
    }

    function _recordId(address holder, address patient, bytes32 commitment)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(holder, patient, commitment));
    }

    function _requireProvider() private view {
        if (!participants.isCredentialed(msg.sender, IParticipantRegistry.Role.Provider)) {
            revert RecordNotProvider(msg.sender);
        }
    }
}
