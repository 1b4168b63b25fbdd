// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// @title IStudyRegistry
/// @notice Research consent: studies that credentialed researchers register and governance
/// approves or closes, patients' opt-ins and withdrawals, and a receipt for every query answered.
/// @dev A study names its protocol (a hash of the off-chain protocol document), the record
/// categories it may count (a 64-bit mask, bit `c` is category `c`), the minimum cell size below
/// which an aggregate answer is suppressed, and a total privacy budget (in micro-epsilon units).
/// Each answered query is recorded in one transaction, its receipt, which spends `cost >= 1` of
/// the budget; the budget can never be overspent. Holders answer a query before its receipt is
/// on chain, so each holder also refuses a new query while an answer it gave is unrecorded, and
/// counts that answer's cost against what is left (see the gatekeeper).
/// Participation discloses no patient (issue 16): a patient takes part in a study as a
/// pseudonym, a key derived from their own secret for that study alone (docs/privacy.md), and
/// opts in, withdraws and cancels only by that pseudonym's EIP-712 signature, relayed by anyone
/// (the pseudonym holds no ether, and a patient sending from their own account would name
/// themselves). An opt-in carries {TAG_SLOTS} holder slots of fixed length, used or not, so the
/// number of the patient's holders is not told either: in each used slot, a holder's view tag
/// and the patient's signature (with the key that holder knows them by) over the study and the
/// pseudonym, encrypted to that holder's registered service key; the holder alone finds it,
/// recovers its patient and counts them. The registry checks only the length: a slot it cannot
/// read may be forged, and the holder ignores what does not decrypt to a signature of one of
/// its patients. An opt-in counts only while the study is approved. Signed messages are
/// ordered per (study, pseudonym), as the consent registry orders them per relationship: each
/// carries the participation's `epoch` and the patient's `issuedAt`, applies only while its
/// epoch is current and `issuedAt` is after the last applied one's and at most the consent
/// registry's `SIGNATURE_SKEW` ahead of the block time; a withdrawal and a cancellation move to
/// the next epoch, voiding every outstanding signature of that study, so a withdrawal wins over
/// every message signed before it was applied. A cancellation also withdraws an applied opt-in
/// of the epoch it closes. At the last epoch (2^24 - 1) the epoch stays and `signedAt` becomes
/// `type(uint40).max`: signatures are void for good.
/// Governance sets a research policy (issue 15): the smallest minimum cell a study may name, and
/// two ceilings on epsilon, one per study and one per researcher. Every released number is
/// differentially private at the patient level under the epsilon its query was charged, and a
/// study's budget composes over all of its queries, so a study's budget bounds what the study
/// can learn about any one patient; a patient who joins several studies of one researcher is
/// exposed to the sum of their budgets, which the researcher's ceiling bounds. A researcher's
/// committed budget is the sum of the `budget` of every study they registered, except studies
/// closed without ever being approved (an approved study keeps its whole budget committed: its
/// holders may have answered queries whose receipts never came). It is counted per researcher
/// account: governance gives one person one researcher credential. A study
/// registered outside the policy in force is refused, and so is its approval when governance has
/// tightened the policy since.
/// Study ids are sequential from 1. Times are unix seconds; blocks are block numbers. Every state
/// change emits an event (an opt-in's block is its log's block); a participation's epoch and
/// `signedAt` are not in its events, which name the pseudonym and nothing else, but in the
/// calldata and {participationOf}. An indexer rebuilds the rest of the state from events alone (the committed budgets too: from
/// {StudyRegistered}, {QueryAnswered} and {StudyClosed}).
interface IStudyRegistry {
    /// @notice Where a study is in its life: registered by its researcher, approved by
    /// governance (patients may opt in, holders answer queries), or closed for good.
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
    /// @param spent the part of the budget already spent by recorded queries
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

    /// @notice An answered query's receipt as stored (two slots).
    /// @param cost the privacy budget it spent (non-zero once recorded)
    /// @param pinnedBlock the block at which consent was taken for its answer
    /// @param answerHash hash of the answer the researcher received
    struct Query {
        uint64 cost;
        uint64 pinnedBlock;
        bytes32 answerHash;
    }

    /// @notice A study pseudonym's participation in a study as stored.
    /// @param optedIn whether the pseudonym is opted in (live only while the study is approved)
    /// @param changedAtBlock the block of the last opt-in or withdrawal (0: never)
    /// @param epoch the signature epoch: signed messages of another epoch are void
    /// @param signedAt `issuedAt` of the last signed message applied in this epoch (0: none)
    struct Participation {
        bool optedIn;
        uint64 changedAtBlock;
        uint24 epoch;
        uint40 signedAt;
    }

    /// @notice Governance's research policy (one slot). Budgets are in micro-epsilon units.
    /// @param minCellSizeFloor the smallest `minCellSize` a study may name (at least 1)
    /// @param maxStudyBudget the largest budget of one study (at least 1)
    /// @param maxResearcherBudget the largest budget one researcher may have committed over all
    /// of their studies (at least `maxStudyBudget`)
    struct ResearchPolicy {
        uint32 minCellSizeFloor;
        uint64 maxStudyBudget;
        uint64 maxResearcherBudget;
    }

    // ------------------------------------------- signature ordering (issue 14)

    /// @notice Emitted when `pseudonym` voids every outstanding signed message of theirs for
    /// study `studyId`; messages must now be signed in `epoch`.
    /// `signedAt` is 0, or at the last epoch `type(uint40).max` (signatures void for good).
    event StudySignaturesCancelled(
        uint256 indexed studyId, address indexed pseudonym, uint24 epoch, uint40 signedAt
    );

    /// @notice The signed message is stale: signed in `epoch`, at `issuedAt`, while the
    /// participation is in `currentEpoch` and its last signed message applied was issued at
    /// `signedAt`. A replay, a message older than one applied, or one voided by a direct
    /// change or a cancellation: sign it again in the current epoch.
    error StudySignatureStale(uint24 epoch, uint40 issuedAt, uint24 currentEpoch, uint40 signedAt);

    /// @notice The signed message's `issuedAt` is after `latest`, the block time plus the
    /// allowed skew: the patient's clock runs ahead of the chain's; sign again.
    error StudySignatureFromFuture(uint40 issuedAt, uint256 latest);

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

    /// @notice Emitted when study pseudonym `pseudonym` opts in to study `studyId`; `tags` are
    /// its {TAGS_LENGTH} bytes of holder slots (see {optInBySig}). Nothing names the patient.
    event OptedIn(uint256 indexed studyId, address indexed pseudonym, bytes tags);

    /// @notice Emitted when `pseudonym` withdraws from study `studyId`; the opt-in stops counting
    /// in this block (by a withdrawal, or by a cancellation that voids an applied opt-in).
    event Withdrew(uint256 indexed studyId, address indexed pseudonym);

    /// @notice Emitted when the study's researcher records the receipt of query `queryHash`:
    /// answered over the patients opted in as of `pinnedBlock`, spending `cost` of the budget,
    /// with an answer whose hash is `answerHash`.
    event QueryAnswered(
        uint256 indexed studyId,
        bytes32 indexed queryHash,
        uint64 cost,
        uint64 pinnedBlock,
        bytes32 answerHash
    );

    /// @notice Emitted when governance sets the research policy, and by the constructor with
    /// the defaults; it applies to registrations and approvals from this block.
    event ResearchPolicySet(
        uint32 minCellSizeFloor, uint64 maxStudyBudget, uint64 maxResearcherBudget
    );

    /// @notice The study's `minCellSize` is below the policy's `floor`: name a larger minimum
    /// cell.
    error StudyCellSizeBelowFloor(uint32 minCellSize, uint32 floor);
    /// @notice The study's `budget` is above the policy's per-study `ceiling`: ask for less.
    error StudyBudgetAboveCeiling(uint64 budget, uint64 ceiling);
    /// @notice `researcher` has `committed` budget over their studies, and `budget` more would
    /// pass the policy's per-researcher `ceiling`: at registration, ask for less; at approval
    /// (the policy was tightened since), governance loosens it or closes a study of theirs that
    /// was never approved (which gives its budget back).
    error StudyResearcherBudgetExceeded(
        address researcher, uint64 committed, uint64 budget, uint64 ceiling
    );
    /// @notice The research policy is invalid: a floor or a study ceiling of 0, or a researcher
    /// ceiling below the study ceiling.
    error StudyInvalidResearchPolicy(
        uint32 minCellSizeFloor, uint64 maxStudyBudget, uint64 maxResearcherBudget
    );

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
    /// @notice `pseudonym` is already opted in to study `studyId`.
    error StudyAlreadyOptedIn(uint256 studyId, address pseudonym);
    /// @notice An opt-in's `tags` are `length` bytes, not the `expected` {TAGS_LENGTH}: every
    /// opt-in carries all {TAG_SLOTS} slots, random bytes in the unused ones.
    error StudyInvalidTagsLength(uint256 length, uint256 expected);
    /// @notice The signature is past its deadline.
    error StudySignatureExpired(uint256 deadline);
    /// @notice The signature is not `pseudonym`'s for this chain, contract and content.
    error StudyInvalidSignature(address pseudonym);
    /// @notice A query's cost is zero.
    error StudyZeroCost();
    /// @notice Spending `cost` on top of `spent` would exceed the study's `budget`.
    error StudyBudgetExceeded(uint256 studyId, uint64 spent, uint64 cost, uint64 budget);
    /// @notice The pinned block is after the current block.
    error StudyPinnedBlockInFuture(uint64 pinnedBlock, uint256 currentBlock);
    /// @notice Query `queryHash` of study `studyId` already has its receipt.
    error StudyQueryExists(uint256 studyId, bytes32 queryHash);
    /// @notice Study `studyId` was registered (`registeredAt`) before its researcher's current
    /// credential run began (`validSince`): a revocation ends the studies of the run it ended.
    error StudyResearcherRecredentialed(uint256 studyId, uint40 registeredAt, uint40 validSince);

    /// @notice Registers a study with the caller as its researcher; it awaits governance's
    /// approval. Returns its id (sequential from 1).
    /// Requirements: caller is a credentialed researcher; `protocolHash`, `categories`,
    /// `minCellSize` and `budget` non-zero; within the research policy in force: `minCellSize`
    /// at least its floor (else {StudyCellSizeBelowFloor}), `budget` at most its study ceiling
    /// (else {StudyBudgetAboveCeiling}), and the caller's committed budget plus `budget` at most
    /// its researcher ceiling (else {StudyResearcherBudgetExceeded}). Adds `budget` to the
    /// caller's committed budget.
    /// Emits {StudyRegistered}.
    function registerStudy(
        bytes32 protocolHash,
        uint64 categories,
        uint32 minCellSize,
        uint64 budget
    ) external returns (uint256 studyId);

    /// @notice Approves study `studyId`: patients may opt in and its researcher may query it.
    /// Requirements: caller holds the governance role; the study exists and is Registered; the
    /// study is within the research policy in force now, which governance may have tightened
    /// since it was registered: its `minCellSize` and `budget` as in {registerStudy}, and its
    /// researcher's committed budget (this study's included) at most the researcher ceiling;
    /// each with {registerStudy}'s error.
    /// Emits {StudyApproved}.
    function approveStudy(uint256 studyId) external;

    /// @notice Closes study `studyId` for good: no opt-in counts, holders answer no new query and
    /// no receipt is recorded (see {recordQuery}).
    /// Requirements: caller holds the governance role; the study exists and is Registered or
    /// Approved. A study closed before approval gives its budget back to its researcher's
    /// committed budget; an approved one keeps all of it committed (its holders may have given
    /// answers whose receipts never came, which only they know of).
    /// Emits {StudyClosed}.
    function closeStudy(uint256 studyId) external;

    /// @notice Opts study pseudonym `pseudonym` in to study `studyId`, authorised by its
    /// EIP-712 signature (EOA or ERC-1271 wallet), relayed by anyone. Bound to this chain, this
    /// contract, `tags`, the participation's `epoch`, the patient's `issuedAt` and `deadline`;
    /// sets `signedAt` to `issuedAt`. `tags` is the 33-byte compressed ephemeral public key of
    /// this opt-in, then {TAG_SLOTS} slots of {TAG_SLOT_LENGTH} bytes: for each of the patient's
    /// holders a view tag and the AES-256-GCM ciphertext, under a key from ECDH of the
    /// ephemeral key and the holder's service key, of the patient's signature over the study
    /// and the pseudonym; random bytes in the others (medrec-protocol's `study_tags`).
    /// Requirements: `tags` exactly {TAGS_LENGTH} bytes (else {StudyInvalidTagsLength});
    /// `block.timestamp <= deadline`; the signature is valid; `epoch` is the stored epoch and
    /// `issuedAt` after the stored `signedAt` (else {StudySignatureStale}) and at most the skew
    /// ahead of the block time (else {StudySignatureFromFuture}); the study exists and is
    /// Approved; the pseudonym is not opted in already.
    /// Emits {OptedIn}.
    function optInBySig(
        uint256 studyId,
        address pseudonym,
        bytes calldata tags,
        uint24 epoch,
        uint40 issuedAt,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Withdraws `pseudonym` from study `studyId`, whatever the study's status,
    /// authorised by its EIP-712 signature, relayed by anyone; the opt-in stops counting in
    /// this block. Moves to the next epoch, so every message signed before it was applied is
    /// void. Applies also when the pseudonym is not opted in (it then only moves the epoch), so
    /// that an opt-in signed before it cannot be relayed after it.
    /// Requirements: as {optInBySig} for the deadline, signature and ordering.
    /// Emits {Withdrew}.
    function withdrawBySig(
        uint256 studyId,
        address pseudonym,
        uint24 epoch,
        uint40 issuedAt,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Voids every outstanding signed message of `pseudonym` for study `studyId`,
    /// authorised by its EIP-712 signature, relayed by anyone: moves to the next epoch and
    /// resets `signedAt`. An opt-in applied from a signature of the epoch this closes is
    /// withdrawn as well (it was signed before the cancellation, and a relayer could otherwise
    /// apply it just ahead of it).
    /// Requirements: as {optInBySig} for the deadline, clock, signature and ordering.
    /// Emits {Withdrew} when it withdraws an opt-in, then {StudySignaturesCancelled}.
    function cancelBySig(
        uint256 studyId,
        address pseudonym,
        uint24 epoch,
        uint40 issuedAt,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Records the receipt of query `queryHash` of study `studyId`, answered by the
    /// holders over the patients opted in as of `pinnedBlock`: spends `cost` of the budget and
    /// keeps `answerHash`, the hash of the answer the researcher received. One transaction per
    /// query; holders count an answer they gave against the budget until its receipt is here.
    /// Requirements: the study exists; caller is its researcher, credentialed now; the study is
    /// Approved (a closed study takes no receipt, so neither a revoked researcher nor one whose
    /// study was closed records queries or spends its budget); `cost`, `queryHash` and
    /// `answerHash` non-zero; `pinnedBlock <= block.number`; `queryHash` has no receipt yet in
    /// the study; `spent + cost <= budget`; the study was registered in the researcher's
    /// current credential run ({IParticipantRegistry-validSinceOf}), so a revoked and
    /// re-issued researcher starts over with new studies.
    /// Emits {QueryAnswered}.
    function recordQuery(
        uint256 studyId,
        bytes32 queryHash,
        uint64 cost,
        uint64 pinnedBlock,
        bytes32 answerHash
    ) external;

    /// @notice Whether `pseudonym`'s opt-in to study `studyId` counts now: opted in and the
    /// study Approved.
    function isOptedIn(uint256 studyId, address pseudonym) external view returns (bool);

    /// @notice The stored participation of `pseudonym` in study `studyId`, live or not.
    function participationOf(uint256 studyId, address pseudonym)
        external
        view
        returns (Participation memory);

    /// @notice The stored study `studyId` (all zero when there is none).
    function studyOf(uint256 studyId) external view returns (Study memory);

    /// @notice The receipt of query `queryHash` of study `studyId` (all zero when there is none).
    function queryOf(uint256 studyId, bytes32 queryHash) external view returns (Query memory);

    /// @notice How many studies were registered: the id of the latest.
    function studyCount() external view returns (uint256);

    /// @notice Sets the research policy for registrations and approvals from now on; studies
    /// already approved keep their terms, and committed budgets above a lowered ceiling stay
    /// (the researcher registers no more until they fall below it).
    /// Requirements: caller holds the governance role; `minCellSizeFloor` and `maxStudyBudget`
    /// non-zero; `maxResearcherBudget >= maxStudyBudget` (else {StudyInvalidResearchPolicy}).
    /// Emits {ResearchPolicySet}.
    function setResearchPolicy(
        uint32 minCellSizeFloor,
        uint64 maxStudyBudget,
        uint64 maxResearcherBudget
    ) external;

    /// @notice The research policy in force.
    function researchPolicy() external view returns (ResearchPolicy memory);

    /// @notice The budget `researcher` has committed: the sum of the budgets of their studies,
    /// except those closed without ever being approved (micro-epsilon units).
    function committedBudgetOf(address researcher) external view returns (uint64);
}
