// EM Denoise (Plugins > emdenoise > EM Denoise)
//
// Denoises the current image or stack with an emdenoise model: the embedded engine in a
// Python worker, or the server set in EM Server Settings. The result opens as a new
// 32-bit window named like the command line's output, <name>_denoised-<model>.tif, with
// the input's calibration, slice labels and hyperstack dimensions and the model's
// provenance in Image > Show Info.
//
// Recordable: run("EM Denoise", "model=ede-kernel-tem-7 modality=any server=embedded
//   tile=0 gain=0 offset=0 output=[32-bit float] residual preview");
// The recorder names the model that ran: model=default is recorded as the id it resolved to.
// After the call, a macro can check success with getTitle() (it names the new window).
// Installed by 'emdenoise fiji install --fiji PATH'; see fiji-macros/README.md.

var TITLE = "EM Denoise";
var python = "";
// PYBOOT: python -c PYBOOT MODULE ARGS runs MODULE without ImageJ's working directory on sys.path (emdenoise.fiji.spawn.MACRO_BOOTSTRAP).
var PYBOOT = "import os, sys; here = os.getcwd(); sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != here]; import runpy; runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)";
var jobdir = "";
var pixelWidth = 1;
var pixelHeight = 1;
var voxelDepth = 1;
var unit = "pixel";
var frameInterval = 0;

here = File.getParent(getInfo("macro.filepath")) + File.separator;
python = configValue(here, "python");
if (python == "")
	fail("emdenoise is not set up for this ImageJ; run 'emdenoise fiji install --fiji <this Fiji.app>' in the Python environment that has emdenoise.");
if (nImages == 0)
	fail("no image is open (an empty stack); open a micrograph or a stack first.");
if (bitDepth() == 24)
	fail("'" + getTitle() + "' is an RGB image; electron micrographs are single-channel, so convert it with Image > Type > 32-bit first.");

// Model chooser from ListModels of the configured server (or the embedded engine).
server = call("ij.Prefs.get", "emdenoise.server", "embedded");
// A user sees "id | MODALITY | dose range | speed"; a macro's options name bare ids.
macroOptions = "" + call("ij.Macro.getOptions");  // run("EM Denoise", options) gave them: no dialog is shown
interactive = false;
if (macroOptions == "" || macroOptions == "null")
	interactive = true;
// A macro's call shows no dialog: its model id goes to the worker as it is (an unknown id
// is reported from there), without a Python started per image just to list the models.
listing = "";
if (interactive)
	listing = exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "models", "--server", server);
models = newArray("default");
choices = newArray("default");
given = call("ij.Macro.getValue", macroOptions, "model", "default");
if (!interactive && given != "default") {
	models = Array.concat(models, given);
	choices = Array.concat(choices, given);
}
listingError = "";
lines = split(listing, "\n");
for (i = 0; i < lines.length; i++) {
	fields = split(lines[i], "\t");
	if (fields.length >= 2 && fields[0] == "ERROR")
		listingError = fields[1];
	else if (fields.length >= 4) {
		models = Array.concat(models, fields[0]);
		label = fields[0];
		if (interactive && fields.length >= 5)
			label = fields[0] + " | " + fields[4];
		choices = Array.concat(choices, label);
	}
}
lastModel = call("ij.Prefs.get", "emdenoise.model", "default");
lastChoice = "default";
for (i = 0; i < models.length; i++)
	if (models[i] == lastModel) lastChoice = choices[i];

Dialog.create(TITLE);
Dialog.addChoice("Model", choices, lastChoice);
Dialog.addChoice("Modality (for the default model)", newArray("any", "tem", "stem", "tem+stem", "hrtem"), "any");
Dialog.addString("Server", server, 22);
Dialog.addNumber("Tile size", 0, 0, 6, "px (0 = model's own)");
Dialog.addNumber("Gain", 0, 4, 8, "counts per electron (0 = estimate)");
Dialog.addNumber("Offset", 0, 2, 8, "counts at zero dose");
Dialog.addChoice("Output type", newArray("32-bit float", "same as input"), "32-bit float");
Dialog.addCheckbox("Residual image (raw - denoised)", false);
Dialog.addCheckbox("Preview on the selection (current frame only)", false);
Dialog.addMessage("Model: id | modality | dose range the model was trained for | speed;\n'default' picks the file's (else the chosen modality's) default model.");
Dialog.addMessage("Results are 32-bit float unless 'same as input' is chosen.\n'embedded' runs the model in a local Python worker; host:port uses a server.\nPress Esc to cancel a running job.");
if (listingError != "")
	Dialog.addMessage("Could not list models: " + listingError);
Dialog.show();
model = modelId(Dialog.getChoice());
modality = Dialog.getChoice();
server = String.trim(Dialog.getString());
tile = Dialog.getNumber();
gain = Dialog.getNumber();
offset = Dialog.getNumber();
outputType = Dialog.getChoice();
residual = Dialog.getCheckbox();
preview = Dialog.getCheckbox();
if (server == "")
	server = "embedded";
call("ij.Prefs.set", "emdenoise.model", model);

// Export the input (or use its unmodified TIFF file) into a fresh job folder.
inputID = getImageID();
inputTitle = getTitle();
inputBits = bitDepth();
getVoxelSize(pixelWidth, pixelHeight, voxelDepth, unit);
frameInterval = Stack.getFrameInterval();
stem = safeName(inputTitle);
// A private job folder (random name, mode 0700): other users can neither read it nor plant links in it.
created = newJobFolder();
if (startsWith(created, "ERROR") || !File.isDirectory(created))
	fail("could not create a job folder: " + replace(created, "ERROR\t", ""));
jobdir = created + File.separator;
wasBatch = is("Batch Mode");
source = "";
if (preview) {
	setBatchMode(true);
	run("Duplicate...", "title=emdenoise-preview");
	source = jobdir + stem + "_preview.tif";
	saveAs("Tiff", source);
	close();
	selectImage(inputID);
	setBatchMode(wasBatch);
} else {
	source = unchangedTiff();
	if (source == "") {
		setBatchMode(true);
		run("Duplicate...", "title=emdenoise-export duplicate");
		source = jobdir + stem + ".tif";
		saveAs("Tiff", source);
		close();
		selectImage(inputID);
		setBatchMode(wasBatch);
	}
}
output = jobdir + "denoised.tif";
residualPath = jobdir + "residual.tif";
request = "action=denoise\ninput=" + source + "\noutput=" + output + "\nmodel=" + model + "\nmodality=" + modality
	+ "\nserver=" + server + "\ntile=" + tile + "\ngain=" + gain + "\noffset=" + offset + "\n";
if (residual)
	request = request + "residual=" + residualPath + "\n";
File.saveString(request, jobdir + "request.txt");

status = runMacro(here + "emdenoise-job.txt", TITLE + "|" + python + "|" + jobdir);
state = keyValue(status, "state");
message = keyValue(status, "message");
if (state == "")
	cancelled();
if (state != "done")
	fail(message);
usedModel = keyValue(status, "model");
seconds = keyValue(status, "seconds");
peak = keyValue(status, "peak_memory_mib");
base = baseName(inputTitle);
suffix = "_denoised-";
if (preview)
	suffix = "_preview-";
open(output);
rename(base + suffix + usedModel + ".tif");
restoreCalibration();
if (outputType == "same as input" && (inputBits == 8 || inputBits == 16))
	convertBack(inputBits);
resultID = getImageID();
if (residual) {
	open(residualPath);
	rename(base + "_residual-" + usedModel + ".tif");
	restoreCalibration();
	selectImage(resultID);
}
removeJobFolder(jobdir);
if (interactive)
	recordModel(usedModel);
done = TITLE + ": " + inputTitle + " -> " + getTitle() + " (" + nSlices + " frames, " + seconds + " s, worker peak " + peak + " MiB, worker pid " + keyValue(status, "worker_pid") + ")";
// Warnings (a dose outside the model's range) stay in the Log, one line each.
warnings = parseInt(keyValue(status, "warnings"));
for (k = 1; k <= warnings; k++)
	print(TITLE + ": warning: " + keyValue(status, "warning" + k));
if (is("Batch Mode"))
	print(done);
note = keyValue(status, "note");
if (note != "")
	done = done + "; " + note;
showStatus(done);

// ---------------------------------------------------------------------------------------
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

// A private job folder: inside this ImageJ's warm worker's folder (mode 0700) while that
// worker lives, made here without starting a Python; else a fresh one from 'bridge newjob'.
function newJobFolder() {
	warm = "" + call("java.lang.System.getProperty", "emdenoise.worker");
	if (warm != "" && warm != "null" && File.exists(warm + "worker-beat.txt")) {
		if (getTime() - File.lastModified(warm + "worker-beat.txt") < 2000) {
			folder = warm + "jobs" + File.separator + "emdenoise-job-" + d2s(getTime(), 0) + "-" + d2s(floor(random * 1000000000), 0);
			File.makeDirectory(folder);
			if (File.isDirectory(folder))
				return folder;
		}
	}
	made = String.trim(exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "newjob", getDirectory("temp")));
	return made;
}

// The finished job's folder holds only this user's files (it is private): they are deleted
// here, without starting a Python per image; the bridge's clean removes what is left, if
// anything is (a file the worker wrote last).
function removeJobFolder(folder) {
	files = getFileList(folder);
	for (k = 0; k < files.length; k++)
		deleted = File.delete(folder + files[k]);  // assigned: batch mode prints a bare call's value
	if (File.exists(folder) && File.delete(folder) != "1")
		exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "clean", folder);
}

function fail(message) {
	if (isOpen("emdenoise-export")) close("emdenoise-export");
	if (isOpen("emdenoise-preview")) close("emdenoise-preview");
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

function modelId(choice) {
	cut = indexOf(choice, " | ");
	if (cut < 0)
		return String.trim(choice);
	return String.trim(substring(choice, 0, cut));
}

// The Macro Recorder writes the model that ran (never "default", never the dialog's
// label): its options are re-recorded with model=ID. (The macro language's && does not
// short-circuit, so the scan below never reads past the padded end.)
function recordModel(id) {
	options = "" + call("ij.plugin.frame.Recorder.getCommandOptions");
	if (indexOf(options, "model=") < 0)
		return;
	call("ij.plugin.frame.Recorder.resetCommandOptions");
	options = String.trim(options) + " ";
	n = lengthOf(options);
	i = 0;
	while (i < n) {
		space = indexOf(options, " ", i);
		equals = indexOf(options, "=", i);
		if (space == i) {
			i = i + 1;
		} else if (equals < 0 || equals > space) {  // a checkbox: a bare word
			call("ij.plugin.frame.Recorder.recordOption", substring(options, i, space));
			i = space + 1;
		} else {
			key = substring(options, i, equals);
			if (substring(options, equals + 1, equals + 2) == "[") {
				bracket = indexOf(options, "]", equals + 2);
				if (bracket < 0) bracket = n - 1;
				value = substring(options, equals + 2, bracket);
				i = bracket + 1;
			} else {
				value = substring(options, equals + 1, space);
				i = space + 1;
			}
			if (key == "model") value = id;
			call("ij.plugin.frame.Recorder.recordOption", key, value);
		}
	}
}

function baseName(name) {
	lower = toLowerCase(name);
	// TIFF and the EM formats EM Open reads: results are named as 'emdenoise denoise' names them
	endings = newArray(".tiff", ".tif", ".dm3", ".dm4", ".ser", ".emi", ".emd", ".mrcs", ".mrc", ".st", ".ali");
	for (k = 0; k < endings.length; k++)
		if (endsWith(lower, endings[k])) return substring(name, 0, lengthOf(name) - lengthOf(endings[k]));
	return name;
}

function safeName(name) {
	base = baseName(name);
	return replace(base, "[^A-Za-z0-9._-]", "_");
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

function restoreCalibration() {
	setVoxelSize(pixelWidth, pixelHeight, voxelDepth, unit);
	if (frameInterval > 0)
		Stack.setFrameInterval(frameInterval);
}

function convertBack(bits) {
	scaling = call("ij.process.ImageConverter.getDoScaling");
	setOption("ScaleConversions", false);
	run("" + bits + "-bit");
	setOption("ScaleConversions", scaling == "true");
}
