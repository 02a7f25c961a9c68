// EM Benchmark (Plugins > emdenoise > EM Benchmark)
//
// Compares classical baselines and emdenoise models on the current stack (frames of the
// same field): CSS of consecutive restored frames (Noise2Atom, seed 004 eq. 10), the
// paired-frame error estimate, and the time per megapixel of every method. Runs
// 'emdenoise bench series' in a Python worker; the table opens as "EM Benchmark of <title>".
//
// Recordable: run("EM Benchmark", "models=ede-kernel-tem-7 baselines=gaussian_3x3,median_3x3
//   frames=8 crop=256");

var TITLE = "EM Benchmark";
var python = "";
// PYBOOT: python -c PYBOOT MODULE ARGS runs MODULE without ImageJ's working directory on sys.path (emdenoise.fiji.spawn.MACRO_BOOTSTRAP).
var PYBOOT = "import os, sys; here = os.getcwd(); sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != here]; import runpy; runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)";
var jobdir = "";

here = File.getParent(getInfo("macro.filepath")) + File.separator;
python = configValue(here, "python");
if (python == "")
	fail("emdenoise is not set up for this ImageJ; run 'emdenoise fiji install --fiji <this Fiji.app>' in the Python environment that has emdenoise.");
if (nImages == 0)
	fail("no image is open; open a stack of frames of the same field first.");
if (bitDepth() == 24)
	fail("'" + getTitle() + "' is an RGB image; convert it with Image > Type > 32-bit first.");
if (nSlices < 2)
	fail("'" + getTitle() + "' has one frame; CSS and the paired-frame error need two or more frames of the same field.");

Dialog.create(TITLE);
Dialog.addString("Models", call("ij.Prefs.get", "emdenoise.model", "default"), 30);
Dialog.addString("Baselines", "gaussian_3x3,median_3x3,wiener,nl_means", 30);
Dialog.addNumber("Frames", 8, 0, 5, "first frames used (0 = all)");
Dialog.addNumber("Crop", 256, 0, 5, "px, centred (0 = whole frame)");
Dialog.addMessage("Models: comma-separated ids from 'emdenoise models' ('default' skips none).\nBaselines: comma-separated keys, 'all' for the papers' full tables, 'none' for none.");
Dialog.show();
models = String.trim(Dialog.getString());
baselines = String.trim(Dialog.getString());
frames = Dialog.getNumber();
crop = Dialog.getNumber();
if (models == "default")
	models = "";
if (baselines == "all")
	baselines = "";

inputTitle = getTitle();
// A private job folder (random name, mode 0700): other users can neither read it nor plant links in it.
created = String.trim(exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "newjob", getDirectory("temp")));
if (startsWith(created, "ERROR") || !File.isDirectory(created))
	fail("could not create a job folder: " + replace(created, "ERROR\t", ""));
jobdir = created + File.separator;
wasBatch = is("Batch Mode");
inputID = getImageID();
setBatchMode(true);
run("Duplicate...", "title=emdenoise-export duplicate");
source = jobdir + "series.tif";
saveAs("Tiff", source);
close();
selectImage(inputID);
setBatchMode(wasBatch);
output = jobdir + "benchmark.csv";
File.saveString("action=benchmark\ninput=" + source + "\noutput=" + output + "\nmodels=" + models
	+ "\nbaselines=" + baselines + "\nframes=" + frames + "\ncrop=" + crop + "\n", jobdir + "request.txt");

status = runMacro(here + "emdenoise-job.txt", TITLE + "|" + python + "|" + jobdir);
state = keyValue(status, "state");
message = keyValue(status, "message");
if (state == "")
	cancelled();
if (state != "done")
	fail(message);
table = File.openAsString(output);
name = "EM Benchmark of " + inputTitle;
Table.create(name);
rows = split(table, "\n");
header = split(rows[0], ",");
for (r = 1; r < rows.length; r++) {
	cells = split(rows[r], ",");
	for (c = 0; c < cells.length; c++) {
		if (c == 0)
			Table.set(header[c], r - 1, cells[c]);
		else
			Table.set(header[c], r - 1, parseFloat(cells[c]));
	}
}
Table.update;
exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "clean", jobdir);
if (is("Batch Mode")) {
	usedFrames = keyValue(status, "frames");
	reference = keyValue(status, "reference");
	print(TITLE + ": " + inputTitle + " (" + usedFrames + " frames; time ratios against " + reference + ")");
	print(table);
}
showStatus(TITLE + ": done");

// Esc aborted the job runner (it returns no state): the worker stops when its heartbeat
// does; remove the job folder now and say so without a dialog.
function cancelled() {
	if (jobdir != "")
		exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "clean", jobdir);
	showStatus(TITLE + ": cancelled");
	if (is("Batch Mode"))
		print(TITLE + ": cancelled");
	exit;
}

function fail(message) {
	if (isOpen("emdenoise-export")) close("emdenoise-export");
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
