// Drives a fresh medrec deployment with viem, as docs/protocol.md's worked examples 1 and 2 do,
// to show that an independent client needs only the contracts' ABI and ERC-5267:
//   1. the gatekeeper's EIP-712 domain read from RecordRegistry.eip712Domain() is the one
//      medrec_bindings::gatekeeper_domain builds (its separator matches DOMAIN_SEPARATOR(), and a
//      RecordRequest hashes to the vector pinned in test/RecordRegistry.t.sol);
//   2. a patient with no ether signs a consent grant with signTypedData over the domain read
//      from ConsentRegistry.eip712Domain(); a relayer sends grantBySig; canRead follows;
//   3. a category mask above 2^53 survives the round trip (as a bigint, never a JS number).
//
// Usage: node check.mjs <rpc-url> <deployments/<chainId>.json>
// (run.sh starts anvil, deploys with script/Deploy.s.sol and calls this.)
import { hashDomain, hashTypedData, keccak256, toHex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { GATEKEEPER_TYPES, ROLE, checker, connect } from "./lib.mjs";

const [rpcUrl, deploymentFile] = process.argv.slice(2);
if (!rpcUrl || !deploymentFile) {
  console.error("usage: node check.mjs <rpc-url> <deployments/<chainId>.json>");
  process.exit(2);
}
const { check, eq, done } = checker();
const chain = await connect(rpcUrl, deploymentFile, { check, eq });
const { deployment, client, abis } = chain;

// ---- 1. The gatekeeper's domain, discovered from the RecordRegistry.
const gatekeeper = await chain.domainOf(deployment.recordRegistry);
eq("gatekeeper domain name", gatekeeper.name, "medrec.Gatekeeper");
eq("gatekeeper domain version", gatekeeper.version, "1");
eq("gatekeeper domain chainId", gatekeeper.chainId, chain.chainId);
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
  await client.readContract({
    address: deployment.recordRegistry,
    abi: abis.records,
    functionName: "DOMAIN_SEPARATOR",
  }),
);
// The vector of test/RecordRegistry.t.sol, equal to medrec_bindings' RecordRequest hash.
eq(
  "a RecordRequest hashes as the gatekeeper hashes it",
  hashTypedData({
    domain: {
      ...gatekeeper,
      chainId: 31337,
      verifyingContract: "0x00000000000000000000000000000000000e5267",
    },
    types: GATEKEEPER_TYPES,
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
eq(
  "consent domain name",
  (await chain.domainOf(deployment.consentRegistry)).name,
  "medrec.ConsentRegistry",
);
const provider = privateKeyToAccount(generatePrivateKey()).address;
await chain.credential(provider, ROLE.provider);
const patient = privateKeyToAccount(generatePrivateKey());
const LABS = 3;
const BIT_60 = 60; // an unnamed category: the mask is above 2^53
const categories = (1n << BigInt(LABS)) | (1n << BigInt(BIT_60));
eq("the patient holds no ether", await client.getBalance({ address: patient.address }), 0n);
await chain.grantBySig(patient, provider, categories);
eq("canRead(labs) after the relayed grant", await chain.canRead(provider, patient.address, LABS), true);
eq("canRead(60) after the relayed grant", await chain.canRead(provider, patient.address, BIT_60), true);
eq("canRead(notes) was not granted", await chain.canRead(provider, patient.address, 8), false);

// ---- 3. The mask above 2^53, read back exactly.
const stored = await client.readContract({
  address: deployment.consentRegistry,
  abi: abis.consent,
  functionName: "grantOf",
  args: [patient.address, provider],
});
eq("grantOf(...).categories, exactly", stored.categories, categories);
check(
  "the mask is above Number.MAX_SAFE_INTEGER",
  categories > BigInt(Number.MAX_SAFE_INTEGER),
  categories.toString(),
);

done("viem reads the domains, signs a grant that the chain accepts");
