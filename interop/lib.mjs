// What the interop checks share: clients for a node, the committed ABIs, anvil's funded
// accounts, ERC-5267 domain discovery, a consent grant signed by a patient and relayed, and a
// tally of checks.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { createPublicClient, createWalletClient, http, keccak256, sha256, toHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** A contract's ABI as `make abi` wrote it for the Rust bindings. */
export const abi = (name) =>
  JSON.parse(readFileSync(join(root, "crates/bindings/abi", `${name}.json`), "utf8")).abi;

/** anvil's well-known funded accounts 0-3: governance (the deployer), a relayer, a holder, a
 * researcher. */
export const anvilAccounts = [
  "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
  "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
  "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
  "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
].map((key) => privateKeyToAccount(key));

/** IParticipantRegistry.Role */
export const ROLE = { provider: 1, researcher: 2 };

export const GRANT_TYPES = {
  Grant: [
    { name: "patient", type: "address" },
    { name: "grantee", type: "address" },
    { name: "categories", type: "uint64" },
    { name: "purpose", type: "uint8" },
    { name: "notBefore", type: "uint40" },
    { name: "expiresAt", type: "uint40" },
    { name: "signer", type: "address" },
    { name: "epoch", type: "uint24" },
    { name: "issuedAt", type: "uint40" },
    { name: "deadline", type: "uint256" },
  ],
};

/** The study registry's signed opt-in (domain medrec.StudyRegistry). */
export const OPT_IN_TYPES = {
  OptIn: [
    { name: "studyId", type: "uint256" },
    { name: "pseudonym", type: "address" },
    { name: "tags", type: "bytes" },
    { name: "epoch", type: "uint24" },
    { name: "issuedAt", type: "uint40" },
    { name: "deadline", type: "uint256" },
  ],
};

/** The `issuedAt` of a signed consent: the signer's clock, strictly after `signedAt`, the last
 * signed message the chain applied for the relationship, and, given `ceiling` (the latest
 * block's time plus the registry's MAX_SIGNATURE_SKEW), never after it: the registries refuse a
 * message dated further ahead (medrec_bindings::next_issued_at, bounded_issued_at). */
export function nextIssuedAt(signedAt, ceiling) {
  let wall = BigInt(Math.floor(Date.now() / 1000));
  if (ceiling !== undefined && wall > BigInt(ceiling)) wall = BigInt(ceiling);
  return wall > BigInt(signedAt) ? wall : BigInt(signedAt) + 1n;
}

/** The gatekeeper's messages (domain medrec.Gatekeeper); signTypedData takes the one its
 * primaryType names. */
export const GATEKEEPER_TYPES = {
  Upload: [
    { name: "holder", type: "address" },
    { name: "patient", type: "address" },
    { name: "category", type: "uint8" },
    { name: "contentHash", type: "bytes32" },
    { name: "nonce", type: "uint256" },
    { name: "issuedAt", type: "uint64" },
  ],
  RecordRequest: [
    { name: "requester", type: "address" },
    { name: "recordId", type: "bytes32" },
    { name: "audience", type: "address" },
    { name: "nonce", type: "uint256" },
    { name: "issuedAt", type: "uint64" },
    { name: "expiresAt", type: "uint64" },
  ],
  ResearchRequest: [
    { name: "researcher", type: "address" },
    { name: "studyId", type: "uint256" },
    { name: "queryHash", type: "bytes32" },
    { name: "audience", type: "address" },
    { name: "nonce", type: "uint256" },
    { name: "issuedAt", type: "uint64" },
    { name: "expiresAt", type: "uint64" },
  ],
  LogRequest: [
    { name: "patient", type: "address" },
    { name: "audience", type: "address" },
    { name: "nonce", type: "uint256" },
    { name: "issuedAt", type: "uint64" },
    { name: "expiresAt", type: "uint64" },
  ],
};

/** The indexer's signed request (domain medrec.Indexer, verifying contract the consent
 * registry): what its per-patient and per-grantee routes require, in the x-medrec-request
 * header. */
export const INDEXER_TYPES = {
  IndexerRequest: [
    { name: "requester", type: "address" },
    { name: "requestHash", type: "bytes32" },
    { name: "nonce", type: "uint256" },
    { name: "issuedAt", type: "uint64" },
    { name: "expiresAt", type: "uint64" },
  ],
};

/** The x-medrec-request header of a GET of `target` (path and query, exactly as sent) by
 * `account` (a viem local account) for the deployment at `consentRegistry` on `chainId`:
 * keccak256("GET " + target) signed with signTypedData, valid 60 s, as JSON. `overrides`
 * replaces fields of the message (tests of refusals). */
export async function indexerHeader(account, chainId, consentRegistry, target, overrides = {}) {
  const now = BigInt(seconds());
  const message = {
    requester: account.address,
    requestHash: keccak256(toHex(`GET ${target}`)),
    nonce: randomNonce(),
    issuedAt: now,
    expiresAt: now + 60n,
    ...overrides,
  };
  const domain = { name: "medrec.Indexer", version: "1", chainId, verifyingContract: consentRegistry };
  const signature = await account.signTypedData({
    domain,
    types: INDEXER_TYPES,
    primaryType: "IndexerRequest",
    message,
  });
  return JSON.stringify({
    request: {
      requester: message.requester,
      requestHash: message.requestHash,
      nonce: `0x${message.nonce.toString(16)}`,
      issuedAt: Number(message.issuedAt),
      expiresAt: Number(message.expiresAt),
    },
    signature,
  });
}

/** A random 256-bit nonce, for gatekeeper messages. */
export const randomNonce = () => BigInt(toHex(randomBytes(32)));

/** Now, in unix seconds, by this machine's clock (the gatekeeper checks windows by its own). */
export const seconds = () => Math.floor(Date.now() / 1000);

/** The holder stores `bytes` at its gatekeeper for `patient` under `category`: an `Upload`
 * signed over the gatekeeper's domain, in the x-medrec-upload and x-medrec-signature headers.
 * Returns the HTTP answer and the content hash. */
export async function upload(gatekeeperUrl, domain, holder, patient, category, bytes) {
  const contentHash = sha256(bytes);
  const message = {
    holder: holder.address,
    patient,
    category,
    contentHash,
    nonce: randomNonce(),
    issuedAt: seconds(),
  };
  const signature = await holder.signTypedData({
    domain,
    types: GATEKEEPER_TYPES,
    primaryType: "Upload",
    message,
  });
  const response = await fetch(`${gatekeeperUrl}/v1/records`, {
    method: "POST",
    headers: {
      "content-type": "application/fhir+json",
      "x-medrec-upload": JSON.stringify({ ...message, nonce: toHex(message.nonce) }),
      "x-medrec-signature": signature,
    },
    body: bytes,
  });
  return { response, contentHash };
}

/** Counts failed checks; `done` exits with their verdict. */
export function checker() {
  let failures = 0;
  const check = (what, ok, detail = "") => {
    console.log(`${ok ? "ok  " : "FAIL"} ${what}${detail ? `: ${detail}` : ""}`);
    if (!ok) failures += 1;
  };
  const eq = (what, got, want) =>
    check(what, got === want, got === want ? "" : `got ${got}, want ${want}`);
  const done = (success) => {
    if (failures > 0) {
      console.error(`interop: ${failures} check(s) failed`);
      process.exit(1);
    }
    console.log(`interop: ${success}`);
  };
  return { check, eq, done };
}

/** Clients for the node at `rpcUrl` and the deployment in `deploymentFile`. */
export async function connect(rpcUrl, deploymentFile, { check, eq }) {
  const deployment = JSON.parse(readFileSync(deploymentFile, "utf8"));
  const client = createPublicClient({ transport: http(rpcUrl) });
  const chainId = await client.getChainId();
  const chain = {
    id: chainId,
    name: "medrec",
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  };
  const abis = {
    participants: abi("ParticipantRegistry"),
    consent: abi("ConsentRegistry"),
    records: abi("RecordRegistry"),
    studies: abi("StudyRegistry"),
  };

  /** Sends a contract call from `account`, checks that it was mined without a revert and
   * returns its receipt. */
  async function send(account, address, contractAbi, functionName, args) {
    const wallet = createWalletClient({ account, chain, transport: http(rpcUrl) });
    const hash = await wallet.writeContract({ address, abi: contractAbi, functionName, args });
    const receipt = await client.waitForTransactionReceipt({ hash, pollingInterval: 50 });
    check(`${functionName} mined`, receipt.status === "success", hash);
    return receipt;
  }

  /** ERC-5267: the contract's EIP-712 domain, as viem's signTypedData takes it. */
  async function domainOf(address) {
    const [fields, name, version, domainChainId, verifyingContract, salt, extensions] =
      await client.readContract({ address, abi: abis.records, functionName: "eip712Domain" });
    eq(`${name}: fields`, fields, "0x0f");
    eq(`${name}: salt`, salt, toHex(0n, { size: 32 }));
    eq(`${name}: extensions`, extensions.length, 0);
    return { name, version, chainId: Number(domainChainId), verifyingContract };
  }

  const now = async () => BigInt((await client.getBlock()).timestamp);

  /** Governance credentials `address` in `role` for a year. */
  async function credential(address, role) {
    await send(anvilAccounts[0], deployment.participantRegistry, abis.participants, "issueCredential", [
      address,
      role,
      keccak256(toHex(`licence of ${address}`)),
      Number((await now()) + 365n * 86400n),
    ]);
  }

  /** `patient` signs a treatment grant of `categories` to `grantee` for 90 days, over the domain
   * read from the chain; anvil's relayer sends it. Returns the message, signature and receipt. */
  async function grantBySig(patient, grantee, categories) {
    const t = await now();
    // The relationship's epoch and last signed time order signed messages (not a nonce).
    const slot = await client.readContract({
      address: deployment.consentRegistry,
      abi: abis.consent,
      functionName: "grantOf",
      args: [patient.address, grantee],
    });
    const message = {
      patient: patient.address,
      grantee,
      categories,
      purpose: 1, // treatment
      notBefore: 0,
      expiresAt: Number(t + 90n * 86400n),
      signer: patient.address,
      epoch: slot.epoch,
      issuedAt: Number(nextIssuedAt(slot.signedAt)),
      deadline: t + 3600n,
    };
    const signature = await patient.signTypedData({
      domain: await domainOf(deployment.consentRegistry),
      types: GRANT_TYPES,
      primaryType: "Grant",
      message,
    });
    const m = message;
    const receipt = await send(anvilAccounts[1], deployment.consentRegistry, abis.consent, "grantBySig", [
      m.patient,
      m.grantee,
      m.categories,
      m.purpose,
      m.notBefore,
      m.expiresAt,
      m.signer,
      m.epoch,
      m.issuedAt,
      m.deadline,
      signature,
    ]);
    return { message, signature, receipt };
  }

  const canRead = (grantee, patient, category) =>
    client.readContract({
      address: deployment.consentRegistry,
      abi: abis.consent,
      functionName: "canRead",
      args: [grantee, patient, category],
    });

  return { deployment, client, chainId, abis, send, domainOf, now, credential, grantBySig, canRead };
}
