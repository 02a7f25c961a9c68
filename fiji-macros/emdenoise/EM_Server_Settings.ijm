// EM Server Settings (Plugins > emdenoise > EM Server Settings)
//
// Where the EM commands send their work: "embedded" (a local Python worker runs the
// model, nothing to start) or the host:port of a running 'emdenoise serve'. A server
// started with --tls-cert/--token-file also needs its certificate (or CA) file and the
// file holding its token. The choice is kept in ImageJ's preferences (keys
// emdenoise.server, emdenoise.server.tls_ca, emdenoise.server.token_file: file paths,
// never the token) and checked at once by listing the models the address offers.
//
// Recordable: run("EM Server Settings", "address=127.0.0.1:50051");
//   run("EM Server Settings", "address=gpu-node:50051 certificate=[/home/me/gpu-node.pem] token=[/home/me/.emdenoise-token]");

var TITLE = "EM Server Settings";

here = File.getParent(getInfo("macro.filepath")) + File.separator;
python = configValue(here, "python");
// PYBOOT: python -c PYBOOT MODULE ARGS runs MODULE without ImageJ's working directory on sys.path (emdenoise.fiji.spawn.MACRO_BOOTSTRAP).
PYBOOT = "import os, sys; here = os.getcwd(); sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != here]; import runpy; runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)";
if (python == "")
	fail("emdenoise is not set up for this ImageJ; run 'emdenoise fiji install --fiji <this Fiji.app>' in the Python environment that has emdenoise.");

current = call("ij.Prefs.get", "emdenoise.server", "embedded");
currentCa = call("ij.Prefs.get", "emdenoise.server.tls_ca", "");
currentToken = call("ij.Prefs.get", "emdenoise.server.token_file", "");
Dialog.create(TITLE);
Dialog.addString("Address", current, 24);
Dialog.addString("Certificate", currentCa, 40);
Dialog.addString("Token", currentToken, 40);
Dialog.addMessage("'embedded': models run in a local Python worker (no server needed).\nhost:port: a running 'emdenoise serve', e.g. 127.0.0.1:50051.\nCertificate: the server's TLS certificate or CA file (PEM); empty for plain connections.\nToken: the FILE that holds the server's token (only its path is stored).");
Dialog.show();
address = String.trim(Dialog.getString());
ca = String.trim(Dialog.getString());
tokenFile = String.trim(Dialog.getString());
if (address == "")
	address = "embedded";

listing = exec(python, "-c", PYBOOT, "emdenoise.fiji.server_settings", "--server", address, "--tls-ca", ca, "--token-file", tokenFile);
lines = split(listing, "\n");
count = 0;
for (i = 0; i < lines.length; i++) {
	fields = split(lines[i], "\t");
	if (fields.length >= 2 && fields[0] == "ERROR")
		fail(fields[1]);
	if (fields.length >= 4)
		count++;
}
call("ij.Prefs.set", "emdenoise.server", address);
call("ij.Prefs.set", "emdenoise.server.tls_ca", ca);
call("ij.Prefs.set", "emdenoise.server.token_file", tokenFile);
call("ij.Prefs.savePreferences");
security = "";
if (ca != "")
	security = ", TLS";
if (tokenFile != "")
	security = security + ", token";
message = TITLE + ": using " + address + " (" + count + " denoising models" + security + ")";
showStatus(message);
if (is("Batch Mode"))
	print(message);

function fail(message) {
	if (is("Batch Mode"))
		print(TITLE + ": error: " + message);
	else
		showMessage(TITLE, message);
	exit;
}

function configValue(folder, key) {
	path = folder + "emdenoise.config";
	if (!File.exists(path))
		return "";
	text = File.openAsString(path);
	value = keyValue(text, key);
	return value;
}

function keyValue(text, key) {
	lines = split(text, "\n");
	for (i = 0; i < lines.length; i++) {
		if (startsWith(lines[i], key + "="))
			return substring(lines[i], lengthOf(key) + 1);
	}
	return "";
}
