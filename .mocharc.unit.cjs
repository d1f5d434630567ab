// Unit tests: pure logic, so no servers — the same options as .mocharc.cjs without the root hooks.
const { require: _rootHooks, ...base } = require("./.mocharc.cjs");
module.exports = { ...base, timeout: 20000 };
