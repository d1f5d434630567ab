// Prints ADMIN_PUBLIC_KEY for the admin key in ADMIN_API_KEY: nodes that must not hold the admin key
// (workers) verify admin calls on the bus with it (src/admin-signature.ts).
//   ADMIN_API_KEY=… npm run -s admin-public-key
import { adminKeyPair, encodePublicKey } from "../src/admin-signature.ts";

const adminKey = process.env.ADMIN_API_KEY ?? "";
if (!adminKey) {
  console.error("admin-public-key: set ADMIN_API_KEY (the admin key whose public key to print)");
  process.exit(2);
}
console.log(encodePublicKey(adminKeyPair(adminKey).publicKey));
