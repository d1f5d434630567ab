// Chromium comes from Debian (/usr/bin/chromium); never download a browser at install time.
module.exports = { skipDownload: true };
