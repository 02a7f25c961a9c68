// EM Server Settings (Plugins > emdenoise > EM Server Settings)
//
// Where the EM commands send their work: "embedded" (a local Python worker runs the
// model, nothing to start) or the host:port of a running 'emdenoise serve'. The choice is
// kept in ImageJ's preferences (key emdenoise.server) and checked at once by listing the
// models the address offers.
//
// Recordable: run("EM Server Settings", "address=127.0.0.1:50051");

var TITLE = "EM Server Settings";

here = File.getParent(getInfo("macro.filepath")) + File.separator;
python = configValue(here, "python");
if (python == "")
	fail("emdenoise is not set up for this ImageJ; run 'emdenoise fiji install --fiji <this Fiji.app>' in the Python environment that has emdenoise.");

current = call("ij.Prefs.get", "emdenoise.server", "embedded");
Dialog.create(TITLE);
Dialog.addString("Address", current, 24);
Dialog.addMessage("'embedded': models run in a local Python worker (no server needed).\nhost:port: a running 'emdenoise serve', e.g. 127.0.0.1:50051.");
Dialog.show();
address = String.trim(Dialog.getString());
if (address == "")
	address = "embedded";

listing = exec(python, "-m", "emdenoise.fiji.bridge", "models", "--server", address);
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
call("ij.Prefs.savePreferences");
message = TITLE + ": using " + address + " (" + count + " denoising models)";
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
