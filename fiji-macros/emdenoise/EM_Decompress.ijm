// EM Decompress (Plugins > emdenoise > EM Decompress)
//
// Opens an .emz file written by EM Compress or 'emdenoise compress': the autoencoder that
// made it decodes the latents (seed 002: restoration with a denoising effect) into a
// 32-bit window named <name>_denoised-<model>.tif with the original's pixel size, frame
// interval and slice labels; Image > Show Info lists the model and its graph digests.
// A file from another model version, or a damaged or truncated file, is refused.
//
// Recordable: run("EM Decompress", "input=[/data/movie.emz] server=embedded");

var TITLE = "EM Decompress";
var python = "";
// PYBOOT: python -c PYBOOT MODULE ARGS runs MODULE without ImageJ's working directory on sys.path (emdenoise.fiji.spawn.MACRO_BOOTSTRAP).
var PYBOOT = "import os, sys; here = os.getcwd(); sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != here]; import runpy; runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)";
var jobdir = "";

here = File.getParent(getInfo("macro.filepath")) + File.separator;
python = configValue(here, "python");
if (python == "")
	fail("emdenoise is not set up for this ImageJ; run 'emdenoise fiji install --fiji <this Fiji.app>' in the Python environment that has emdenoise.");
server = call("ij.Prefs.get", "emdenoise.server", "embedded");
lastInput = call("ij.Prefs.get", "emdenoise.decompress.input", "");

Dialog.create(TITLE);
Dialog.addString("Input", lastInput, 40);
Dialog.addString("Server", server, 22);
Dialog.addMessage("Input: an .emz file. 'embedded' runs the model in a local Python worker;\nhost:port uses a server.");
Dialog.show();
input = String.trim(Dialog.getString());
server = String.trim(Dialog.getString());
if (server == "")
	server = "embedded";
if (input == "" || !File.exists(input))
	fail("the .emz file '" + input + "' does not exist; give the path of a file written by EM Compress.");
call("ij.Prefs.set", "emdenoise.decompress.input", input);

// A private job folder (random name, mode 0700): other users can neither read it nor plant links in it.
created = String.trim(exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "newjob", getDirectory("temp")));
if (startsWith(created, "ERROR") || !File.isDirectory(created))
	fail("could not create a job folder: " + replace(created, "ERROR\t", ""));
jobdir = created + File.separator;
output = jobdir + "restored.tif";
File.saveString("action=decompress\ninput=" + input + "\noutput=" + output + "\nserver=" + server + "\n", jobdir + "request.txt");

status = runMacro(here + "emdenoise-job.txt", TITLE + "|" + python + "|" + jobdir);
state = keyValue(status, "state");
message = keyValue(status, "message");
if (state == "")
	cancelled();
if (state != "done")
	fail(message);
open(output);
rename(keyValue(status, "title"));
exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "clean", jobdir);
done = TITLE + ": " + File.getName(input) + " -> " + getTitle() + " (" + nSlices + " frames, " + keyValue(status, "model") + ", "
	+ keyValue(status, "seconds") + " s)";
showStatus(done);
if (is("Batch Mode"))
	print(done);

// ---------------------------------------------------------------------------------------
function cancelled() {
	if (jobdir != "")
		exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "clean", jobdir);
	showStatus(TITLE + ": cancelled");
	if (is("Batch Mode"))
		print(TITLE + ": cancelled");
	exit;
}

function fail(message) {
	if (jobdir != "")
		exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "clean", jobdir);
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
