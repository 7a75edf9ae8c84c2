// n8n finds the nodes and the credential through package.json's "n8n" section.
module.exports = {};
