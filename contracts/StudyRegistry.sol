// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {IParticipantRegistry} from "./interfaces/IParticipantRegistry.sol";
import {IStudyRegistry} from "./interfaces/IStudyRegistry.sol";
import {SIGNATURE_SKEW} from "./interfaces/IConsentRegistry.sol";

/// @title StudyRegistry
/// @notice Research studies, opt-ins of patients' study pseudonyms and receipts of answered
/// queries, within governance's research policy. See {IStudyRegistry}.
/// @dev The policy's budgets are ceilings on epsilon because every released answer is
/// differentially private at the patient level under the epsilon its query was charged, and
/// epsilons compose: a study's budget bounds what all of its queries together reveal about any
/// one patient (besides the one answer per holder that a researcher who never records a receipt
/// keeps, which each holder's epsilon cap bounds), and a researcher's ceiling bounds what all of
/// one researcher account's studies reveal about a patient who joins several of them. The floor on the minimum cell keeps the noisy
/// threshold below which holders hold cells back from being set to nothing.
contract StudyRegistry is IStudyRegistry, AccessControl, EIP712 {
    /// @notice The consortium's governance role: approves and closes studies.
    bytes32 public constant GOVERNANCE_ROLE = keccak256("GOVERNANCE_ROLE");
    /// @notice EIP-712 type hash of a signed opt-in: signed by the study pseudonym, `tags` the
    /// holders' slots (hashed as EIP-712 hashes `bytes`).
    bytes32 public constant OPT_IN_TYPEHASH = keccak256(
        "OptIn(uint256 studyId,address pseudonym,bytes tags,uint24 epoch,uint40 issuedAt,uint256 deadline)"
    );
    /// @notice EIP-712 type hash of a signed withdrawal.
    bytes32 public constant WITHDRAW_TYPEHASH = keccak256(
        "Withdraw(uint256 studyId,address pseudonym,uint24 epoch,uint40 issuedAt,uint256 deadline)"
    );
    /// @notice EIP-712 type hash of a signed cancellation of a pseudonym's study signatures.
    bytes32 public constant CANCEL_TYPEHASH = keccak256(
        "CancelStudySignatures(uint256 studyId,address pseudonym,uint24 epoch,uint40 issuedAt,uint256 deadline)"
    );

    /// @notice How many holder slots an opt-in carries, used or not: a fixed number, so that
    /// the opt-in does not tell how many holders keep the patient's records.
    uint256 public constant TAG_SLOTS = 8;
    /// @notice The length of one slot: a 1-byte view tag, then the AES-256-GCM ciphertext of
    /// the patient's 65-byte signature with its 16-byte authentication tag.
    uint256 public constant TAG_SLOT_LENGTH = 82;
    /// @notice The exact length of an opt-in's `tags`: the ephemeral public key (33 bytes,
    /// compressed secp256k1) and then {TAG_SLOTS} slots of {TAG_SLOT_LENGTH} bytes.
    uint256 public constant TAGS_LENGTH = 33 + TAG_SLOTS * TAG_SLOT_LENGTH;

    /// @notice How far a signed message's `issuedAt` may be ahead of the block time: 5 minutes
    /// (the consent registry's {SIGNATURE_SKEW}, for the same reasons).
    uint40 public constant MAX_SIGNATURE_SKEW = SIGNATURE_SKEW;

    /// @notice Where researchers' credentials are checked.
    IParticipantRegistry public immutable participants;

    // Storage: a study takes three slots (researcher, status, categories | minCellSize, budget,
    // spent, registeredAt | protocolHash); a query two; a participation one, keyed by the
    // study pseudonym, never the patient (optedIn, changedAtBlock, epoch, signedAt); the policy one (floor, study ceiling, researcher
    // ceiling); a researcher's committed budget one. New state goes after the old, so the
    // slots of the first four stay where tests and tools expect them.
    mapping(uint256 studyId => Study) private _studies;
    mapping(uint256 studyId => mapping(bytes32 queryHash => Query)) private _queries;
    mapping(uint256 studyId => mapping(address pseudonym => Participation)) private _participations;
    uint256 private _studyCount;
    ResearchPolicy private _policy;
    mapping(address researcher => uint64) private _committed;

    /// @param admin receives the admin and governance roles
    /// @param participants_ the credential registry
    constructor(address admin, IParticipantRegistry participants_)
        EIP712("medrec.StudyRegistry", "1")
    {
        if (admin == address(0) || address(participants_) == address(0)) {
            revert StudyZeroAddress();
        }
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GOVERNANCE_ROLE, admin);
        participants = participants_;
        // Defaults a privacy officer would start from: cells whose noised count is under 5 are
        // held back, a study spends at most epsilon 10 and a researcher's studies together at
        // most epsilon 50.
        _setResearchPolicy(5, 10_000_000, 50_000_000);
    }

    // ----------------------------------------------------------------- studies

    /// @inheritdoc IStudyRegistry
    function registerStudy(
        bytes32 protocolHash,
        uint64 categories,
        uint32 minCellSize,
        uint64 budget
    ) external returns (uint256 studyId) {
        _requireResearcher();
        if (protocolHash == bytes32(0)) revert StudyZeroHash();
        if (categories == 0) revert StudyNoCategories();
        if (minCellSize == 0) revert StudyZeroCellSize();
        if (budget == 0) revert StudyZeroBudget();
        uint64 committed = _committed[msg.sender];
        _checkPolicy(msg.sender, minCellSize, budget, committed);
        // _checkPolicy bounded the sum by a uint64 ceiling.
        _committed[msg.sender] = committed + budget;
        studyId = ++_studyCount;
        uint40 nowTs = uint40(block.timestamp);
        _studies[studyId] = Study({
            researcher: msg.sender,
            status: Status.Registered,
            categories: categories,
            minCellSize: minCellSize,
            budget: budget,
            spent: 0,
            registeredAt: nowTs,
            protocolHash: protocolHash
        });
        emit StudyRegistered(
            studyId, msg.sender, protocolHash, categories, minCellSize, budget, nowTs
        );
    }

    /// @inheritdoc IStudyRegistry
    function approveStudy(uint256 studyId) external onlyRole(GOVERNANCE_ROLE) {
        Study storage s = _studies[studyId];
        Status status = s.status;
        if (status == Status.None) revert StudyNotFound(studyId);
        if (status != Status.Registered) revert StudyInvalidStatus(studyId, status);
        // The policy may have been tightened since registration. The researcher's committed
        // budget already holds this study's, so it is checked as one registered on top of the
        // others.
        address researcher = s.researcher;
        uint64 budget = s.budget;
        _checkPolicy(researcher, s.minCellSize, budget, _committed[researcher] - budget);
        s.status = Status.Approved;
        emit StudyApproved(studyId, uint40(block.timestamp));
    }

    /// @inheritdoc IStudyRegistry
    function closeStudy(uint256 studyId) external onlyRole(GOVERNANCE_ROLE) {
        Study storage s = _studies[studyId];
        Status status = s.status;
        if (status == Status.None) revert StudyNotFound(studyId);
        if (status == Status.Closed) revert StudyInvalidStatus(studyId, status);
        s.status = Status.Closed;
        // Only a study that never ran gives its budget back. An approved one keeps all of it
        // committed: holders answer before a query's receipt is on chain, so what it revealed
        // may exceed what it spent, and only the holders know by how much.
        if (status == Status.Registered) _committed[s.researcher] -= s.budget;
        emit StudyClosed(studyId, uint40(block.timestamp));
    }

    /// @inheritdoc IStudyRegistry
    function setResearchPolicy(
        uint32 minCellSizeFloor,
        uint64 maxStudyBudget,
        uint64 maxResearcherBudget
    ) external onlyRole(GOVERNANCE_ROLE) {
        _setResearchPolicy(minCellSizeFloor, maxStudyBudget, maxResearcherBudget);
    }

    // --------------------------------------------------------------- consent

    /// @inheritdoc IStudyRegistry
    function optInBySig(
        uint256 studyId,
        address pseudonym,
        bytes calldata tags,
        uint24 epoch,
        uint40 issuedAt,
        uint256 deadline,
        bytes calldata signature
    ) external {
        if (tags.length != TAGS_LENGTH) {
            revert StudyInvalidTagsLength(tags.length, TAGS_LENGTH);
        }
        bytes32 structHash = keccak256(
            abi.encode(
                OPT_IN_TYPEHASH, studyId, pseudonym, keccak256(tags), epoch, issuedAt, deadline
            )
        );
        _checkSignature(structHash, studyId, pseudonym, epoch, issuedAt, deadline, signature);
        Study storage s = _studies[studyId];
        Status status = s.status;
        if (status == Status.None) revert StudyNotFound(studyId);
        if (status != Status.Approved) revert StudyInvalidStatus(studyId, status);
        Participation storage p = _participations[studyId][pseudonym];
        if (p.optedIn) revert StudyAlreadyOptedIn(studyId, pseudonym);
        p.optedIn = true;
        p.changedAtBlock = uint64(block.number);
        p.signedAt = issuedAt;
        emit OptedIn(studyId, pseudonym, tags);
    }

    /// @inheritdoc IStudyRegistry
    function withdrawBySig(
        uint256 studyId,
        address pseudonym,
        uint24 epoch,
        uint40 issuedAt,
        uint256 deadline,
        bytes calldata signature
    ) external {
        bytes32 structHash = keccak256(
            abi.encode(WITHDRAW_TYPEHASH, studyId, pseudonym, epoch, issuedAt, deadline)
        );
        _checkSignature(structHash, studyId, pseudonym, epoch, issuedAt, deadline, signature);
        _withdraw(studyId, pseudonym);
    }

    /// @inheritdoc IStudyRegistry
    function cancelBySig(
        uint256 studyId,
        address pseudonym,
        uint24 epoch,
        uint40 issuedAt,
        uint256 deadline,
        bytes calldata signature
    ) external {
        bytes32 structHash = keccak256(
            abi.encode(CANCEL_TYPEHASH, studyId, pseudonym, epoch, issuedAt, deadline)
        );
        _checkSignature(structHash, studyId, pseudonym, epoch, issuedAt, deadline, signature);
        Participation storage p = _participations[studyId][pseudonym];
        // Every opt-in is signed: one applied in the epoch this closes was signed before the
        // cancellation (a relayer may have applied it just ahead of it), so it is withdrawn.
        bool wasIn = p.optedIn;
        (uint24 next, uint40 signedAt) = _voidSignatures(p.epoch);
        _participations[studyId][pseudonym] = Participation({
            optedIn: false,
            changedAtBlock: wasIn ? uint64(block.number) : p.changedAtBlock,
            epoch: next,
            signedAt: signedAt
        });
        if (wasIn) emit Withdrew(studyId, pseudonym);
        emit StudySignaturesCancelled(studyId, pseudonym, next, signedAt);
    }

    // --------------------------------------------------------------- queries

    /// @inheritdoc IStudyRegistry
    function recordQuery(
        uint256 studyId,
        bytes32 queryHash,
        uint64 cost,
        uint64 pinnedBlock,
        bytes32 answerHash
    ) external {
        Study storage s = _studies[studyId];
        _requireStudyResearcher(studyId, s);
        // A revoked or lapsed researcher, or a closed study, spends no budget.
        _requireResearcher();
        Status status = s.status;
        if (status != Status.Approved) revert StudyInvalidStatus(studyId, status);
        // A study approved in a credential run that a revocation ended stays ended: the new
        // credential's review did not cover it.
        uint40 registeredAt = s.registeredAt;
        uint40 validSince = participants.validSinceOf(msg.sender);
        if (registeredAt < validSince) {
            revert StudyResearcherRecredentialed(studyId, registeredAt, validSince);
        }
        if (cost == 0) revert StudyZeroCost();
        if (queryHash == bytes32(0) || answerHash == bytes32(0)) revert StudyZeroHash();
        if (pinnedBlock > block.number) revert StudyPinnedBlockInFuture(pinnedBlock, block.number);
        Query storage q = _queries[studyId][queryHash];
        if (q.cost != 0) revert StudyQueryExists(studyId, queryHash);
        uint64 spent = s.spent;
        uint64 budget = s.budget;
        // spent <= budget always holds, so this neither underflows nor lets spent pass budget.
        if (cost > budget - spent) revert StudyBudgetExceeded(studyId, spent, cost, budget);
        s.spent = spent + cost;
        q.cost = cost;
        q.pinnedBlock = pinnedBlock;
        q.answerHash = answerHash;
        emit QueryAnswered(studyId, queryHash, cost, pinnedBlock, answerHash);
    }

    // ------------------------------------------------------------------- views

    /// @inheritdoc IStudyRegistry
    function isOptedIn(uint256 studyId, address pseudonym) external view returns (bool) {
        Study storage s = _studies[studyId];
        return _participations[studyId][pseudonym].optedIn && s.status == Status.Approved;
    }

    /// @inheritdoc IStudyRegistry
    function participationOf(uint256 studyId, address pseudonym)
        external
        view
        returns (Participation memory)
    {
        return _participations[studyId][pseudonym];
    }

    /// @inheritdoc IStudyRegistry
    function studyOf(uint256 studyId) external view returns (Study memory) {
        return _studies[studyId];
    }

    /// @inheritdoc IStudyRegistry
    function queryOf(uint256 studyId, bytes32 queryHash) external view returns (Query memory) {
        return _queries[studyId][queryHash];
    }

    /// @inheritdoc IStudyRegistry
    function studyCount() external view returns (uint256) {
        return _studyCount;
    }

    /// @inheritdoc IStudyRegistry
    function researchPolicy() external view returns (ResearchPolicy memory) {
        return _policy;
    }

    /// @inheritdoc IStudyRegistry
    function committedBudgetOf(address researcher) external view returns (uint64) {
        return _committed[researcher];
    }

    /// @notice The EIP-712 domain separator of this contract on this chain.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ---------------------------------------------------------------- internal

    /// @dev A withdrawal moves the participation to its next epoch: it wins over every message
    /// signed in the epoch it closes, whatever their `issuedAt`. It applies without an opt-in
    /// too (moving only the epoch), so that an opt-in signed before it cannot follow it.
    function _withdraw(uint256 studyId, address pseudonym) private {
        (uint24 epoch, uint40 signedAt) = _voidSignatures(_participations[studyId][pseudonym].epoch);
        _participations[studyId][pseudonym] = Participation({
            optedIn: false, changedAtBlock: uint64(block.number), epoch: epoch, signedAt: signedAt
        });
        emit Withdrew(studyId, pseudonym);
    }

    /// @dev As the consent registry's: the next epoch with nothing signed, or at the last epoch
    /// (2^24 - 1) the same epoch with `signedAt` at its maximum, voiding signatures for good (a
    /// study pseudonym has no direct path: its participation can change no more).
    function _voidSignatures(uint24 epoch) private pure returns (uint24, uint40) {
        // `>=` is `==` for a uint24, without the strict equality slither flags as a guard.
        if (epoch >= type(uint24).max) return (epoch, type(uint40).max);
        unchecked {
            return (epoch + 1, 0);
        }
    }

    function _setResearchPolicy(
        uint32 minCellSizeFloor,
        uint64 maxStudyBudget,
        uint64 maxResearcherBudget
    ) private {
        if (minCellSizeFloor == 0 || maxStudyBudget == 0 || maxResearcherBudget < maxStudyBudget) {
            revert StudyInvalidResearchPolicy(minCellSizeFloor, maxStudyBudget, maxResearcherBudget);
        }
        _policy = ResearchPolicy({
            minCellSizeFloor: minCellSizeFloor,
            maxStudyBudget: maxStudyBudget,
            maxResearcherBudget: maxResearcherBudget
        });
        emit ResearchPolicySet(minCellSizeFloor, maxStudyBudget, maxResearcherBudget);
    }

    /// @dev Reverts unless a study of `researcher` with `minCellSize` and `budget`, on top of
    /// `committed` by their other studies, is within the policy in force.
    function _checkPolicy(address researcher, uint32 minCellSize, uint64 budget, uint64 committed)
        private
        view
    {
        ResearchPolicy memory p = _policy;
        if (minCellSize < p.minCellSizeFloor) {
            revert StudyCellSizeBelowFloor(minCellSize, p.minCellSizeFloor);
        }
        if (budget > p.maxStudyBudget) revert StudyBudgetAboveCeiling(budget, p.maxStudyBudget);
        // In 256 bits: the sum of two uint64 may not fit in one.
        if (uint256(committed) + budget > p.maxResearcherBudget) {
            revert StudyResearcherBudgetExceeded(
                researcher, committed, budget, p.maxResearcherBudget
            );
        }
    }

    function _requireResearcher() private view {
        if (!participants.isCredentialed(msg.sender, IParticipantRegistry.Role.Researcher)) {
            revert StudyNotResearcher(msg.sender);
        }
    }

    /// @dev Reverts unless study `studyId` exists and the caller is its researcher.
    function _requireStudyResearcher(uint256 studyId, Study storage s) private view {
        address r = s.researcher;
        if (r == address(0)) revert StudyNotFound(studyId);
        if (r != msg.sender) revert StudyUnauthorized(studyId, msg.sender);
    }

    /// @dev Reverts unless the signature is `pseudonym`'s, within its deadline, and in order for
    /// the participation: its epoch current and `issuedAt` after the last signed one applied.
    function _checkSignature(
        bytes32 structHash,
        uint256 studyId,
        address pseudonym,
        uint24 epoch,
        uint40 issuedAt,
        uint256 deadline,
        bytes calldata signature
    ) private view {
        if (block.timestamp > deadline) revert StudySignatureExpired(deadline);
        // The patient's clock orders their messages: it may not run ahead of the chain's by
        // more than the skew (see {SIGNATURE_SKEW}).
        uint256 latest;
        // Block times are far below 2^256 - 5 minutes.
        unchecked {
            latest = block.timestamp + MAX_SIGNATURE_SKEW;
        }
        if (issuedAt > latest) revert StudySignatureFromFuture(issuedAt, latest);
        bytes32 digest = _hashTypedDataV4(structHash);
        // The key's own signature first, then ERC-1271: an EOA's signature is checked without
        // looking up the signer's (cold) code, which is most of what a relayed consent costs
        // over a direct one.
        // The error's argument only details a failure that `err` already reports.
        // slither-disable-next-line unused-return
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, signature);
        if (
            (err != ECDSA.RecoverError.NoError || recovered != pseudonym)
                && !SignatureChecker.isValidERC1271SignatureNowCalldata(
                    pseudonym, digest, signature
                )
        ) {
            revert StudyInvalidSignature(pseudonym);
        }
        Participation storage p = _participations[studyId][pseudonym];
        uint24 current = p.epoch;
        uint40 signedAt = p.signedAt;
        if (epoch != current || issuedAt <= signedAt) {
            revert StudySignatureStale(epoch, issuedAt, current, signedAt);
        }
    }
}
