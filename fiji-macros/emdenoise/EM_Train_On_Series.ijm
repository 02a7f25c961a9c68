// EM Train On Series (Plugins > emdenoise > EM Train On Series)
//
// Trains a Noise2Atom denoiser (seed 004) on the current STEM series: the noisy frames
// are mapped to simulated Gaussian atom peaks without any clean data. The new model is
// registered in the user model folder of the machine that trains (this computer with
// server=embedded, else the server) and is offered by EM Denoise from then on.
//
// Recordable: run("EM Train On Series", "name=n2a-my-sample preset=cpu minutes=20 steps=0
//   server=embedded gain=0 offset=0");
// The series needs 10 or more frames of one field, bright atoms on a dark background
// (HAADF/ADF), in counts or with the detector gain and offset. Esc cancels the training.

var TITLE = "EM Train On Series";
var python = "";
// PYBOOT: python -c PYBOOT MODULE ARGS runs MODULE without ImageJ's working directory on sys.path (emdenoise.fiji.spawn.MACRO_BOOTSTRAP).
var PYBOOT = "import os, sys; here = os.getcwd(); sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != here]; import runpy; runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)";
var jobdir = "";

here = File.getParent(getInfo("macro.filepath")) + File.separator;
python = configValue(here, "python");
if (python == "")
	fail("emdenoise is not set up for this ImageJ; run 'emdenoise fiji install --fiji <this Fiji.app>' in the Python environment that has emdenoise.");
if (nImages == 0)
	fail("no image is open; open the STEM series (10 frames or more) first.");
if (bitDepth() == 24)
	fail("'" + getTitle() + "' is an RGB image; electron micrographs are single-channel, so convert it with Image > Type > 32-bit first.");
if (nSlices < 10)
	fail("'" + getTitle() + "' has " + nSlices + " frame(s); Noise2Atom training needs at least 10 frames of the same field.");

server = call("ij.Prefs.get", "emdenoise.server", "embedded");
inputID = getImageID();
inputTitle = getTitle();
stem = safeName(inputTitle);
suggested = "n2a-" + toLowerCase(replace(stem, "[^A-Za-z0-9]+", "-"));
if (endsWith(suggested, "-"))
	suggested = substring(suggested, 0, lengthOf(suggested) - 1);

Dialog.create(TITLE);
Dialog.addString("Name", suggested, 24);
Dialog.addChoice("Preset", newArray("cpu", "paper", "tiny"), "cpu");
Dialog.addNumber("Minutes", 20, 0, 6, "stop after (0 = the preset's steps)");
Dialog.addNumber("Steps", 0, 0, 6, "generator steps (0 = the preset's)");
Dialog.addString("Server", server, 22);
Dialog.addNumber("Gain", 0, 4, 8, "reading per electron (0 = estimate)");
Dialog.addNumber("Offset", 0, 2, 8, "reading at zero electrons");
Dialog.addMessage("Noise2Atom (seed 004) learns from this series alone; the model then appears in EM Denoise.\n"
	+ "'cpu' trains a narrow network in minutes, 'paper' the paper's network (use a GPU server).\nEsc cancels.");
Dialog.show();
name = String.trim(Dialog.getString());
preset = Dialog.getChoice();
minutes = Dialog.getNumber();
steps = Dialog.getNumber();
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
request = "action=train\ninput=" + source + "\nname=" + name + "\npreset=" + preset + "\nminutes=" + minutes
	+ "\nsteps=" + steps + "\nserver=" + server + "\ngain=" + gain + "\noffset=" + offset + "\nseries=" + inputTitle + "\n";
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
