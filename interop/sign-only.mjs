// docs/protocol.md's `--sign-only` file written by viem: a patient with no ether signs a grant
// over the domain read from the chain and writes it in the file format `medrec relay` reads
// (format 3: the relationship's epoch and the issue time instead of a nonce, numbers wider than
// 32 bits as decimal strings). run.sh relays the file with the
// medrec CLI and checks canRead.
//
// Usage: node sign-only.mjs <rpc-url> <deployments/<chainId>.json> <out-file>
import { writeFileSync } from "node:fs";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { GRANT_TYPES, ROLE, checker, connect, nextIssuedAt } from "./lib.mjs";

const [rpcUrl, deploymentFile, outFile] = process.argv.slice(2);
if (!rpcUrl || !deploymentFile || !outFile) {
  console.error("usage: node sign-only.mjs <rpc-url> <deployments/<chainId>.json> <out-file>");
  process.exit(2);
}
const { check, eq, done } = checker();
const chain = await connect(rpcUrl, deploymentFile, { check, eq });
const provider = privateKeyToAccount(generatePrivateKey()).address;
await chain.credential(provider, ROLE.provider);

const patient = privateKeyToAccount(generatePrivateKey());
const domain = await chain.domainOf(chain.deployment.consentRegistry);
const now = await chain.now();
const slot = await chain.client.readContract({
  address: chain.deployment.consentRegistry,
  abi: chain.abis.consent,
  functionName: "grantOf",
  args: [patient.address, provider],
});
const skew = await chain.client.readContract({
  address: chain.deployment.consentRegistry,
  abi: chain.abis.consent,
  functionName: "MAX_SIGNATURE_SKEW",
});
const message = {
  patient: patient.address,
  grantee: provider,
  categories: (1n << 3n) | (1n << 8n), // labs, notes
  purpose: 1,
  notBefore: 0,
  expiresAt: Number(now + 90n * 86400n),
  signer: patient.address,
  epoch: slot.epoch,
  issuedAt: nextIssuedAt(slot.signedAt, now + BigInt(skew)),
  deadline: now + 3600n,
};
const signature = await patient.signTypedData({
  domain,
  types: GRANT_TYPES,
  primaryType: "Grant",
  message,
});
// The file's format 3: a mask is a JSON number while JavaScript holds it exactly and a decimal
// string above; the other numbers wider than 32 bits (the uint40 times, the uint256 deadline)
// are decimal strings; purpose, epoch and chain id are numbers.
const field = (k, v) => {
  if (k === "categories") return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  if (["notBefore", "expiresAt", "issuedAt", "deadline"].includes(k)) return v.toString();
  return v;
};
writeFileSync(
  outFile,
  `${JSON.stringify(
    {
      type: "grant",
      version: 3,
      chainId: domain.chainId,
      contract: domain.verifyingContract,
      message: Object.fromEntries(Object.entries(message).map(([k, v]) => [k, field(k, v)])),
      signature,
    },
    null,
    2,
  )}\n`,
);
done(`a grant signed by ${patient.address} for ${provider}, written to ${outFile}`);
