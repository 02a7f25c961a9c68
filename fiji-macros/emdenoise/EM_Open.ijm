// EM Open (Plugins > emdenoise > EM Open)
//
// Opens a DM3/DM4, SER/EMI, EMD (Velox, Berkeley) or MRC file with emdenoise's readers
// (RosettaSciIO, mrcfile) in a Python worker: pixel size and unit go into the image's
// calibration, the file's metadata into Image > Show Info (with a 'Modality: stem|tem'
// line when the file records it; EM Denoise's default model follows it).
//
// Recordable: run("EM Open", "path=[/data/image.dm4]");
// After the call, getTitle() is the file's name; on failure no window opens (the message
// is shown, or printed in batch mode).
// Installed by 'emdenoise fiji install --fiji PATH'; see fiji-macros/README.md.

var TITLE = "EM Open";
var python = "";
// PYBOOT: python -c PYBOOT MODULE ARGS runs MODULE without ImageJ's working directory on sys.path (emdenoise.fiji.spawn.MACRO_BOOTSTRAP).
var PYBOOT = "import os, sys; here = os.getcwd(); sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != here]; import runpy; runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)";
var jobdir = "";

here = File.getParent(getInfo("macro.filepath")) + File.separator;
python = configValue(here, "python");
if (python == "")
	fail("emdenoise is not set up for this ImageJ; run 'emdenoise fiji install --fiji <this Fiji.app>' in the Python environment that has emdenoise.");

Dialog.create(TITLE);
Dialog.addString("Path", "", 40);
Dialog.addMessage("A DM3/DM4, SER/EMI, EMD or MRC file (empty: choose one).");
Dialog.show();
path = String.trim(Dialog.getString());
if (path == "" && !is("Batch Mode"))
	path = File.openDialog("EM file to open");
if (path == "")
	fail("EM Open needs a file; give path=[/folder/image.dm4] or choose one in the dialog.");
if (!File.exists(path))
	fail("the file " + path + " does not exist; check the path and its spelling.");

// A private job folder (random name, mode 0700): other users can neither read it nor plant links in it.
created = String.trim(exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "newjob", getDirectory("temp")));
if (startsWith(created, "ERROR") || !File.isDirectory(created))
	fail("could not create a job folder: " + replace(created, "ERROR\t", ""));
jobdir = created + File.separator;
output = jobdir + "opened.tif";
File.saveString("action=open\ninput=" + path + "\noutput=" + output + "\n", jobdir + "request.txt");
status = runMacro(here + "emdenoise-job.txt", TITLE + "|" + python + "|" + jobdir);
state = keyValue(status, "state");
if (state == "") {
	exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "clean", jobdir);
	exit;
}
if (state != "done")
	fail(keyValue(status, "message"));
open(output);
rename(File.getName(path));
exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "clean", jobdir);
getPixelSize(unit, pw, ph);
done = TITLE + ": " + path + " (" + nSlices + " frames, " + pw + " " + unit + "/px)";
showStatus(done);
if (is("Batch Mode"))
	print(done);

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
