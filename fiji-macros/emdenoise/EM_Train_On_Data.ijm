// EM Train On Data (Plugins > emdenoise > EM Train On Data)
//
// Trains a denoiser on the current image alone, self-supervised (issue 18, as
// 'emdenoise adapt'): a pair or series of one field trains Noise2Noise between its
// registered frames, one frame of whole counts binomial thinning, any other single frame
// a blind-spot network. A strip of every frame is held out; the network and classical-auto
// (a Gaussian / VST + NLM tuned on the same strip) are scored on it by the same no-truth
// error, and the final message says which is better. The model is registered in the user
// model folder of the machine that trains (this computer with server=embedded, else the
// server) and is offered by EM Denoise from then on.
//
// Recordable: run("EM Train On Data", "name=adapt-my-sample method=auto minutes=10 from=[]
//   modality=any server=embedded gain=0 offset=0");
// From model continues a model made by EM Train On Data or 'emdenoise adapt' (empty: from
// scratch). Method noise2atom runs Noise2Atom as EM Train On Series does (10+ frames).
// Esc cancels the training.

var TITLE = "EM Train On Data";
var python = "";
// PYBOOT: python -c PYBOOT MODULE ARGS runs MODULE without ImageJ's working directory on sys.path (emdenoise.fiji.spawn.MACRO_BOOTSTRAP).
var PYBOOT = "import os, sys; here = os.getcwd(); sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != here]; import runpy; runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)";
var jobdir = "";

here = File.getParent(getInfo("macro.filepath")) + File.separator;
python = configValue(here, "python");
if (python == "")
	fail("emdenoise is not set up for this ImageJ; run 'emdenoise fiji install --fiji <this Fiji.app>' in the Python environment that has emdenoise.");
if (nImages == 0)
	fail("no image is open; open the frame, pair or series to train on first.");
if (bitDepth() == 24)
	fail("'" + getTitle() + "' is an RGB image; electron micrographs are single-channel, so convert it with Image > Type > 32-bit first.");

server = call("ij.Prefs.get", "emdenoise.server", "embedded");
inputID = getImageID();
inputTitle = getTitle();
stem = safeName(inputTitle);
suggested = "adapt-" + toLowerCase(replace(stem, "[^A-Za-z0-9]+", "-"));
if (endsWith(suggested, "-"))
	suggested = substring(suggested, 0, lengthOf(suggested) - 1);

Dialog.create(TITLE);
Dialog.addString("Name", suggested, 24);
Dialog.addChoice("Method", newArray("auto", "pair", "thinning", "blindspot", "sure", "noise2atom"), "auto");
Dialog.addNumber("Minutes", 10, 0, 6, "training time");
Dialog.addString("From model", "", 24);
Dialog.addChoice("Modality", newArray("any", "tem", "hrtem", "stem"), "any");
Dialog.addString("Server", server, 22);
// 0 decimals: the field shows (and the recorder writes) the number as typed, gain=0 by default
Dialog.addNumber("Gain", 0, 0, 8, "reading per electron (0 = estimate)");
Dialog.addNumber("Offset", 0, 2, 8, "reading at zero electrons");
Dialog.addMessage("Learns from this image alone (" + nSlices + " frame(s)); the model then appears in EM Denoise.\n"
	+ "auto: thinning for whole counts, else pair for 2+ frames, else blindspot. From model: empty = from scratch.\n"
	+ "The result says whether the model beats classical-auto on held-out rows. Esc cancels.");
Dialog.show();
name = String.trim(Dialog.getString());
method = Dialog.getChoice();
minutes = Dialog.getNumber();
from = String.trim(Dialog.getString());
modality = Dialog.getChoice();
server = String.trim(Dialog.getString());
gain = Dialog.getNumber();
offset = Dialog.getNumber();
if (server == "")
	server = "embedded";

// A private job folder (random name, mode 0700): other users can neither read it nor plant links in it.
created = String.trim(exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "newjob", getDirectory("temp")));
if (startsWith(created, "ERROR") || !File.isDirectory(created))
	fail("could not create a job folder: " + replace(created, "ERROR\t", ""));
jobdir = created + File.separator;
source = unchangedTiff();
if (source == "") {
	wasBatch = is("Batch Mode");
	setBatchMode(true);
	run("Duplicate...", "title=emdenoise-export duplicate");
	source = jobdir + stem + ".tif";
	saveAs("Tiff", source);
	close();
	selectImage(inputID);
	setBatchMode(wasBatch);
}
request = "action=adapt\ninput=" + source + "\nname=" + name + "\nmethod=" + method + "\nminutes=" + minutes
	+ "\nfrom=" + from + "\nmodality=" + modality + "\nserver=" + server + "\ngain=" + gain + "\noffset=" + offset
	+ "\nseries=" + inputTitle + "\n";
File.saveString(request, jobdir + "request.txt");

status = runMacro(here + "emdenoise-job.txt", TITLE + "|" + python + "|" + jobdir);
state = keyValue(status, "state");
message = keyValue(status, "message");
if (state == "")
	cancelled();
if (state != "done")
	fail(message);
exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "clean", jobdir);
selectImage(inputID);
done = TITLE + ": " + inputTitle + ": " + message;
showStatus(done);
if (is("Batch Mode"))
	print(done);
else
	showMessage(TITLE, message);

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
	value = keyValue(text, key);  // ImageJ 1.53t cannot return a user function's result directly here
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

function baseName(name) {
	lower = toLowerCase(name);
	if (endsWith(lower, ".tiff")) return substring(name, 0, lengthOf(name) - 5);
	if (endsWith(lower, ".tif")) return substring(name, 0, lengthOf(name) - 4);
	return name;
}

function safeName(name) {
	return replace(baseName(name), "[^A-Za-z0-9._-]", "_");
}

// The image's own TIFF when the worker can read it directly: same pixels, no copy.
function unchangedTiff() {
	directory = getInfo("image.directory");
	file = getInfo("image.filename");
	lower = toLowerCase(file);
	if (directory == "" || is("changes") || !(endsWith(lower, ".tif") || endsWith(lower, ".tiff")))
		return "";
	if (!File.exists(directory + file))
		return "";
	return directory + file;
}
