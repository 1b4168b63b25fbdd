// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// @title IStudyRegistry
/// @notice Research consent: studies that credentialed researchers register and governance
/// approves or closes, patients' opt-ins and withdrawals, and a receipt for every query answered.
/// @dev A study names its protocol (a hash of the off-chain protocol document), the record
/// categories it may count (a 64-bit mask, bit `c` is category `c`), the minimum cell size below
/// which an aggregate answer is suppressed, and a total privacy budget (in micro-epsilon units).
/// Each query spends `cost >= 1` of the budget when it is submitted, and the budget can never be
/// overspent. A patient opts in or withdraws directly, or by an EIP-712 signature (EOA or
/// ERC-1271 wallet) that anyone may relay; an opt-in counts only while the study is approved.
/// Study ids are sequential from 1. Times are unix seconds; blocks are block numbers. Every state
/// change emits an event carrying the whole new state (an opt-in's block is its log's block), so
/// an indexer can rebuild all state from events alone.
interface IStudyRegistry {
    /// @notice Where a study is in its life: registered by its researcher, approved by
    /// governance (patients may opt in, queries may be submitted), or closed for good.
    enum Status {
        None,
        Registered,
        Approved,
        Closed
    }

    /// @notice A study as stored (three slots).
    /// @param researcher who registered it and alone may query it
    /// @param status where it is in its life
    /// @param categories the record categories it may count (bitmask)
    /// @param minCellSize the smallest count an answer may report
    /// @param budget the total privacy budget, in micro-epsilon units
    /// @param spent the part of the budget already spent by submitted queries
    /// @param registeredAt when it was registered (seconds)
    /// @param protocolHash hash of the off-chain protocol document
    struct Study {
        address researcher;
        Status status;
        uint64 categories;
        uint32 minCellSize;
        uint64 budget;
        uint64 spent;
        uint40 registeredAt;
        bytes32 protocolHash;
    }

    /// @notice A submitted query as stored.
    /// @param cost the privacy budget it spent (non-zero once submitted)
    /// @param pinnedBlock the block at which consent is taken for its answer
    /// @param answered whether its answer was recorded
    /// @param answerHash hash of the answer, once recorded
    struct Query {
        uint64 cost;
        uint64 pinnedBlock;
        bool answered;
        bytes32 answerHash;
    }

    /// @notice A patient's participation in a study as stored.
    /// @param optedIn whether the patient is opted in (live only while the study is approved)
    /// @param changedAtBlock the block of the last opt-in or withdrawal (0: never)
    struct Participation {
        bool optedIn;
        uint64 changedAtBlock;
    }

    /// @notice Emitted when `researcher` registers study `studyId`.
    event StudyRegistered(
        uint256 indexed studyId,
        address indexed researcher,
        bytes32 protocolHash,
        uint64 categories,
        uint32 minCellSize,
        uint64 budget,
        uint40 registeredAt
    );

    /// @notice Emitted when governance approves study `studyId`.
    event StudyApproved(uint256 indexed studyId, uint40 approvedAt);

    /// @notice Emitted when governance closes study `studyId`; no opt-in counts from this block.
    event StudyClosed(uint256 indexed studyId, uint40 closedAt);

    /// @notice Emitted when `patient` opts in to study `studyId`; `by` sent the transaction (the
    /// patient, or whoever relayed the patient's signature).
    event OptedIn(uint256 indexed studyId, address indexed patient, address by);

    /// @notice Emitted when `patient` withdraws from study `studyId`; the opt-in stops counting
    /// in this block. `by` sent the transaction (the patient, or the relayer of their signature).
    event Withdrew(uint256 indexed studyId, address indexed patient, address by);

    /// @notice Emitted when the study's researcher submits query `queryHash`, spending `cost` of
    /// the study's budget; consent is taken as of `pinnedBlock`.
    event QuerySubmitted(
        uint256 indexed studyId, bytes32 indexed queryHash, uint64 cost, uint64 pinnedBlock
    );

    /// @notice Emitted when the study's researcher records the answer to query `queryHash`: the
    /// on-chain receipt of an answered query.
    event QueryAnswered(uint256 indexed studyId, bytes32 indexed queryHash, bytes32 answerHash);

    /// @notice An address argument is zero.
    error StudyZeroAddress();
    /// @notice `account` is not a credentialed researcher.
    error StudyNotResearcher(address account);
    /// @notice A protocol, query or answer hash is zero.
    error StudyZeroHash();
    /// @notice The category mask is empty.
    error StudyNoCategories();
    /// @notice The minimum cell size is zero.
    error StudyZeroCellSize();
    /// @notice The privacy budget is zero.
    error StudyZeroBudget();
    /// @notice There is no study `studyId`.
    error StudyNotFound(uint256 studyId);
    /// @notice Study `studyId` is in `status`, where the call is not allowed.
    error StudyInvalidStatus(uint256 studyId, Status status);
    /// @notice `caller` is not the researcher of study `studyId`.
    error StudyUnauthorized(uint256 studyId, address caller);
    /// @notice `patient` is already opted in to study `studyId`.
    error StudyAlreadyOptedIn(uint256 studyId, address patient);
    /// @notice `patient` is not opted in to study `studyId`.
    error StudyNotOptedIn(uint256 studyId, address patient);
    /// @notice The signature is past its deadline.
    error StudySignatureExpired(uint256 deadline);
    /// @notice The signature is not `patient`'s for this chain, contract, nonce and content.
    error StudyInvalidSignature(address patient);
    /// @notice A query's cost is zero.
    error StudyZeroCost();
    /// @notice Spending `cost` on top of `spent` would exceed the study's `budget`.
    error StudyBudgetExceeded(uint256 studyId, uint64 spent, uint64 cost, uint64 budget);
    /// @notice The pinned block is after the current block.
    error StudyPinnedBlockInFuture(uint64 pinnedBlock, uint256 currentBlock);
    /// @notice Query `queryHash` was already submitted for study `studyId`.
    error StudyQueryExists(uint256 studyId, bytes32 queryHash);
    /// @notice Query `queryHash` was not submitted for study `studyId`.
    error StudyQueryNotFound(uint256 studyId, bytes32 queryHash);
    /// @notice Query `queryHash` of study `studyId` is already answered.
    error StudyQueryAnswered(uint256 studyId, bytes32 queryHash);

    /// @notice Registers a study with the caller as its researcher; it awaits governance's
    /// approval. Returns its id (sequential from 1).
    /// Requirements: caller is a credentialed researcher; `protocolHash`, `categories`,
    /// `minCellSize` and `budget` non-zero.
    /// Emits {StudyRegistered}.
    function registerStudy(
        bytes32 protocolHash,
        uint64 categories,
        uint32 minCellSize,
        uint64 budget
    ) external returns (uint256 studyId);

    /// @notice Approves study `studyId`: patients may opt in and its researcher may query it.
    /// Requirements: caller holds the governance role; the study exists and is Registered.
    /// Emits {StudyApproved}.
    function approveStudy(uint256 studyId) external;

    /// @notice Closes study `studyId` for good: no opt-in counts and no query is accepted any more.
    /// Requirements: caller holds the governance role; the study exists and is Registered or
    /// Approved.
    /// Emits {StudyClosed}.
    function closeStudy(uint256 studyId) external;

    /// @notice Opts the caller in to study `studyId`.
    /// Requirements: the study exists and is Approved; the caller is not opted in already.
    /// Emits {OptedIn}.
    function optIn(uint256 studyId) external;

    /// @notice Withdraws the caller from study `studyId`, whatever the study's status; the opt-in
    /// stops counting in this block.
    /// Requirements: the caller is opted in.
    /// Emits {Withdrew}.
    function withdraw(uint256 studyId) external;

    /// @notice {optIn} of `patient` authorised by their EIP-712 signature (EOA or ERC-1271
    /// wallet), relayed by anyone. Bound to this chain, this contract, `patient`'s next nonce and
    /// `deadline`.
    /// Requirements: as {optIn} for `patient`; `block.timestamp <= deadline`; the signature is
    /// valid; `nonce` is `patient`'s current nonce.
    /// Emits {OptedIn}.
    function optInBySig(
        uint256 studyId,
        address patient,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice {withdraw} of `patient` authorised by their EIP-712 signature, relayed by anyone.
    /// Requirements: as {withdraw} for `patient`, and as {optInBySig}.
    /// Emits {Withdrew}.
    function withdrawBySig(
        uint256 studyId,
        address patient,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Submits query `queryHash` to study `studyId`, spending `cost` of its budget; its
    /// answer counts the patients opted in as of `pinnedBlock`.
    /// Requirements: the study exists; caller is its researcher and still a credentialed
    /// researcher; the study is Approved; `cost` and `queryHash` non-zero;
    /// `pinnedBlock <= block.number`; `queryHash` not yet submitted to the study;
    /// `spent + cost <= budget`.
    /// Emits {QuerySubmitted}.
    function submitQuery(uint256 studyId, bytes32 queryHash, uint64 cost, uint64 pinnedBlock)
        external;

    /// @notice Records `answerHash` as the answer to query `queryHash` of study `studyId`: the
    /// query's receipt.
    /// Requirements: the study exists; caller is its researcher; `answerHash` non-zero; the
    /// query was submitted and is not answered yet.
    /// Emits {QueryAnswered}.
    function recordAnswer(uint256 studyId, bytes32 queryHash, bytes32 answerHash) external;

    /// @notice Whether `patient`'s opt-in to study `studyId` counts now: opted in and the study
    /// Approved.
    function isOptedIn(uint256 studyId, address patient) external view returns (bool);

    /// @notice The stored participation of `patient` in study `studyId`, live or not.
    function participationOf(uint256 studyId, address patient)
        external
        view
        returns (Participation memory);

    /// @notice The stored study `studyId` (all zero when there is none).
    function studyOf(uint256 studyId) external view returns (Study memory);

    /// @notice The stored query `queryHash` of study `studyId` (all zero when there is none).
    function queryOf(uint256 studyId, bytes32 queryHash) external view returns (Query memory);

    /// @notice How many studies were registered: the id of the latest.
    function studyCount() external view returns (uint256);

    /// @notice The next nonce `patient` must use in a signature.
    function nonces(address patient) external view returns (uint256);
}
