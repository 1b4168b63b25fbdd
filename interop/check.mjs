// Drives a fresh medrec deployment with viem, as docs/protocol.md's worked examples do, to show
// that an independent client needs only the contracts' ABI and ERC-5267 to interoperate:
//   1. the gatekeeper's EIP-712 domain read from RecordRegistry.eip712Domain() is the one
//      medrec_bindings::gatekeeper_domain builds (its separator matches DOMAIN_SEPARATOR(), and a
//      RecordRequest hashes to the vector pinned in test/RecordRegistry.t.sol);
//   2. a patient with no ether signs a consent grant with signTypedData over the domain read
//      from ConsentRegistry.eip712Domain(); a relayer sends grantBySig; canRead follows;
//   3. a category mask above 2^53 survives the round trip (as a bigint, never a JS number).
//
// Usage: node check.mjs <rpc-url> <deployments/<chainId>.json>
// (run.sh starts anvil, deploys with script/Deploy.s.sol and calls this.)
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  createPublicClient,
  createWalletClient,
  hashDomain,
  hashTypedData,
  http,
  keccak256,
  toHex,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

const [rpcUrl, deploymentFile] = process.argv.slice(2);
if (!rpcUrl || !deploymentFile) {
  console.error("usage: node check.mjs <rpc-url> <deployments/<chainId>.json>");
  process.exit(2);
}
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const abi = (name) =>
  JSON.parse(readFileSync(join(root, "crates/bindings/abi", `${name}.json`), "utf8")).abi;
const deployment = JSON.parse(readFileSync(deploymentFile, "utf8"));

let failures = 0;
function check(what, ok, detail = "") {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${detail ? `: ${detail}` : ""}`);
  if (!ok) failures += 1;
}
const eq = (what, got, want) =>
  check(what, got === want, got === want ? "" : `got ${got}, want ${want}`);

// anvil's first two well-known accounts: the deployer (governance) and a relayer.
const governance = privateKeyToAccount(
  "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
);
const relayer = privateKeyToAccount(
  "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
);
const publicClient = createPublicClient({ transport: http(rpcUrl) });
const chainId = await publicClient.getChainId();
const chain = {
  id: chainId,
  name: "medrec",
  nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
  rpcUrls: { default: { http: [rpcUrl] } },
};
const wallet = (account) => createWalletClient({ account, chain, transport: http(rpcUrl) });
async function send(account, address, contractAbi, functionName, args) {
  const hash = await wallet(account).writeContract({ address, abi: contractAbi, functionName, args });
  const receipt = await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 50 });
  check(`${functionName} mined`, receipt.status === "success", hash);
}

// ERC-5267: a domain as viem's signTypedData takes it.
async function domainOf(address, contractAbi) {
  const [fields, name, version, domainChainId, verifyingContract, salt, extensions] =
    await publicClient.readContract({ address, abi: contractAbi, functionName: "eip712Domain" });
  eq(`${name}: fields`, fields, "0x0f");
  eq(`${name}: salt`, salt, toHex(0n, { size: 32 }));
  eq(`${name}: extensions`, extensions.length, 0);
  return { name, version, chainId: Number(domainChainId), verifyingContract };
}

// ---- 1. The gatekeeper's domain, discovered from the RecordRegistry.
const recordAbi = abi("RecordRegistry");
const gatekeeper = await domainOf(deployment.recordRegistry, recordAbi);
eq("gatekeeper domain name", gatekeeper.name, "medrec.Gatekeeper");
eq("gatekeeper domain version", gatekeeper.version, "1");
eq("gatekeeper domain chainId", gatekeeper.chainId, chainId);
eq(
  "gatekeeper domain verifyingContract",
  gatekeeper.verifyingContract.toLowerCase(),
  deployment.recordRegistry.toLowerCase(),
);
eq(
  "viem's separator of the discovered domain is DOMAIN_SEPARATOR()",
  hashDomain({
    domain: gatekeeper,
    types: {
      EIP712Domain: [
        { name: "name", type: "string" },
        { name: "version", type: "string" },
        { name: "chainId", type: "uint256" },
        { name: "verifyingContract", type: "address" },
      ],
    },
  }),
  await publicClient.readContract({
    address: deployment.recordRegistry,
    abi: recordAbi,
    functionName: "DOMAIN_SEPARATOR",
  }),
);
const recordRequestTypes = {
  RecordRequest: [
    { name: "requester", type: "address" },
    { name: "recordId", type: "bytes32" },
    { name: "audience", type: "address" },
    { name: "nonce", type: "uint256" },
    { name: "issuedAt", type: "uint64" },
    { name: "expiresAt", type: "uint64" },
  ],
};
// The vector of test/RecordRegistry.t.sol, equal to medrec_bindings' RecordRequest hash.
eq(
  "a RecordRequest hashes as the gatekeeper hashes it",
  hashTypedData({
    domain: {
      ...gatekeeper,
      chainId: 31337,
      verifyingContract: "0x00000000000000000000000000000000000e5267",
    },
    types: recordRequestTypes,
    primaryType: "RecordRequest",
    message: {
      requester: "0x00000000000000000000000000000000000a11ce",
      recordId: keccak256(toHex("record 1")),
      audience: "0x0000000000000000000000000000000000000b0b",
      nonce: 7n,
      issuedAt: 1_800_000_000n,
      expiresAt: 1_800_000_300n,
    },
  }),
  "0xf113258eb891795fe67f254d52198bc3352cbedd3828f847493e688156445f9c",
);

// ---- 2. A consent grant signed by a patient with no ether, relayed by someone else.
const participantAbi = abi("ParticipantRegistry");
const consentAbi = abi("ConsentRegistry");
const consentDomain = await domainOf(deployment.consentRegistry, consentAbi);
eq("consent domain name", consentDomain.name, "medrec.ConsentRegistry");

const now = BigInt((await publicClient.getBlock()).timestamp);
const provider = privateKeyToAccount(generatePrivateKey()).address;
const PROVIDER = 1; // IParticipantRegistry.Role.Provider
await send(governance, deployment.participantRegistry, participantAbi, "issueCredential", [
  provider,
  PROVIDER,
  keccak256(toHex("licence")),
  Number(now + 365n * 86400n),
]);

const patient = privateKeyToAccount(generatePrivateKey());
const LABS = 3;
const BIT_60 = 60; // an unnamed category: the mask is above 2^53
const categories = (1n << BigInt(LABS)) | (1n << BigInt(BIT_60));
const message = {
  patient: patient.address,
  grantee: provider,
  categories,
  purpose: 1, // treatment
  notBefore: 0,
  expiresAt: Number(now + 90n * 86400n),
  signer: patient.address,
  nonce: await publicClient.readContract({
    address: deployment.consentRegistry,
    abi: consentAbi,
    functionName: "nonces",
    args: [patient.address],
  }),
  deadline: now + 3600n,
};
const signature = await patient.signTypedData({
  domain: consentDomain,
  types: {
    Grant: [
      { name: "patient", type: "address" },
      { name: "grantee", type: "address" },
      { name: "categories", type: "uint64" },
      { name: "purpose", type: "uint8" },
      { name: "notBefore", type: "uint40" },
      { name: "expiresAt", type: "uint40" },
      { name: "signer", type: "address" },
      { name: "nonce", type: "uint256" },
      { name: "deadline", type: "uint256" },
    ],
  },
  primaryType: "Grant",
  message,
});
eq(
  "the patient holds no ether",
  await publicClient.getBalance({ address: patient.address }),
  0n,
);
await send(relayer, deployment.consentRegistry, consentAbi, "grantBySig", [
  message.patient,
  message.grantee,
  message.categories,
  message.purpose,
  message.notBefore,
  message.expiresAt,
  message.signer,
  message.nonce,
  message.deadline,
  signature,
]);
const canRead = (category) =>
  publicClient.readContract({
    address: deployment.consentRegistry,
    abi: consentAbi,
    functionName: "canRead",
    args: [provider, patient.address, category],
  });
eq("canRead(labs) after the relayed grant", await canRead(LABS), true);
eq("canRead(category 60) after the relayed grant", await canRead(BIT_60), true);
eq("canRead(notes) was not granted", await canRead(8), false);

// ---- 3. The mask above 2^53, read back exactly.
const stored = await publicClient.readContract({
  address: deployment.consentRegistry,
  abi: consentAbi,
  functionName: "grantOf",
  args: [patient.address, provider],
});
eq("grantOf(...).categories, exactly", stored.categories, categories);
check(
  "the mask is above Number.MAX_SAFE_INTEGER",
  categories > BigInt(Number.MAX_SAFE_INTEGER),
  categories.toString(),
);

if (failures > 0) {
  console.error(`interop: ${failures} check(s) failed`);
  process.exit(1);
}
console.log("interop: viem reads the domains, signs a grant that the chain accepts");
