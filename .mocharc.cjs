// Every spec runs under tsx on the Node 22 from node_modules/.bin; the root hooks start the real
// servers (nats-server with JetStream, FerretDB) once per run unless NATS_URL / MONGO_URL are set.
module.exports = {
  "node-option": ["import=tsx"],
  require: ["test/support/root-hooks.ts"],
  timeout: 60000,
  slow: 2000,
  reporter: "spec",
  exit: true,
};
