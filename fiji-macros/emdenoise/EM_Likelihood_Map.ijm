// EM Likelihood Map (Plugins > emdenoise > EM Likelihood Map)
//
// Is each restored atom column supported by the raw counts? (SBD, Mohan et al., sec. 3.)
// Columns are detected in the denoised estimate - this image's denoised result, or a model
// run now - and each is tested against the vacuum with the Poisson log-likelihood ratio of
// raw counts the estimate never saw (a model run now denoises a binomial half of the counts
// and the other half is tested). The result: the map as a 32-bit window
// (<name>_llr, NaN outside the columns), the overlay on the raw image (red: the counts favour
// the column, blue: they favour vacuum), the columns in the ROI Manager and in the image's
// overlay, coloured the same way (ROI properties hold llr, decision, intensity, pixels), and
// the region table with each column's decision (supported / contradicted / undecided at 5 %
// significance). With "Test_counts=[next frame]" a model run now denoises this frame and the
// next frame of the stack (the previous one for the last frame) is tested: nothing is halved.
//
// Recordable: run("EM Likelihood Map", "estimate=[run model] model=default modality=any
//   server=embedded gain=0 offset=0 polarity=auto vacuum=flat vacuum_level=0
//   min_sigma=1 max_sigma=8 threshold=0.05 map=per-pixel test_counts=[halves of this frame]");
// The raw image must hold counts, or give the detector gain and offset.

var TITLE = "EM Likelihood Map";
var python = "";
// PYBOOT: python -c PYBOOT MODULE ARGS runs MODULE without ImageJ's working directory on sys.path (emdenoise.fiji.spawn.MACRO_BOOTSTRAP).
var PYBOOT = "import os, sys; here = os.getcwd(); sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != here]; import runpy; runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)";
var jobdir = "";

here = File.getParent(getInfo("macro.filepath")) + File.separator;
python = configValue(here, "python");
if (python == "")
	fail("emdenoise is not set up for this ImageJ; run 'emdenoise fiji install --fiji <this Fiji.app>' in the Python environment that has emdenoise.");
if (nImages == 0)
	fail("no image is open; open the raw micrograph (in counts) first.");
if (bitDepth() == 24)
	fail("'" + getTitle() + "' is an RGB image; electron micrographs are single-channel, so convert it with Image > Type > 32-bit first.");

server = call("ij.Prefs.get", "emdenoise.server", "embedded");
listing = exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "models", "--server", server);
models = newArray("default");
lines = split(listing, "\n");
for (i = 0; i < lines.length; i++) {
	fields = split(lines[i], "\t");
	if (fields.length >= 4 && fields[0] != "ERROR")
		models = Array.concat(models, fields[0]);
}
inputID = getImageID();
inputTitle = getTitle();
inputWidth = getWidth();
inputHeight = getHeight();
// The estimate defaults to this image's own denoised result (EM Denoise names it
// <name>_denoised-<model>.tif), else to "run model": never to an unrelated open image.
estimates = newArray("run model");
defaultEstimate = "run model";
for (i = 1; i <= nImages; i++) {
	selectImage(i);
	if (getImageID() != inputID && bitDepth() != 24) {
		estimates = Array.concat(estimates, getTitle());
		if (defaultEstimate == "run model" && startsWith(getTitle(), baseName(inputTitle) + "_denoised-"))
			defaultEstimate = getTitle();
	}
}
selectImage(inputID);

Dialog.create(TITLE);
Dialog.addChoice("Estimate (denoised image)", estimates, defaultEstimate);
Dialog.addChoice("Model (for 'run model')", models, "default");
Dialog.addChoice("Modality (for the default model)", newArray("any", "tem", "stem", "tem+stem", "hrtem"), "any");
Dialog.addString("Server", server, 22);
Dialog.addNumber("Gain", 0, 4, 8, "reading per electron (0 = image is counts)");
Dialog.addNumber("Offset", 0, 2, 8, "reading at zero electrons");
Dialog.addChoice("Polarity", newArray("auto", "bright", "dark"), "auto");
Dialog.addChoice("Vacuum", newArray("flat", "dark"), "flat");
Dialog.addNumber("Vacuum_level", 0, 4, 8, "counts/px (0 = find the vacuum)");
Dialog.addNumber("Min_sigma", 1, 1, 6, "px");
Dialog.addNumber("Max_sigma", 8, 1, 6, "px");
Dialog.addNumber("Threshold", 0.05, 3, 6, "blob contrast");
Dialog.addChoice("Map", newArray("per-pixel", "total"), "per-pixel");
testChoices = newArray("halves of this frame");
if (nSlices > 1)
	testChoices = Array.concat(testChoices, "next frame");
Dialog.addChoice("Test_counts", testChoices, "halves of this frame");
Dialog.addMessage("Red: the counts favour the column (LLR > 0); blue: they favour vacuum - a column the\ndenoiser may have invented. Each column's decision (5 % significance) is in the table.");
Dialog.show();
estimate = Dialog.getChoice();
model = Dialog.getChoice();
modality = Dialog.getChoice();
server = String.trim(Dialog.getString());
gain = Dialog.getNumber();
offset = Dialog.getNumber();
polarity = Dialog.getChoice();
vacuum = Dialog.getChoice();
vacuumLevel = Dialog.getNumber();
minSigma = Dialog.getNumber();
maxSigma = Dialog.getNumber();
threshold = Dialog.getNumber();
mapUnits = Dialog.getChoice();
testCounts = Dialog.getChoice();
if (testCounts == "next frame" && nSlices < 2)
	fail("'" + inputTitle + "' has one frame; choose Test_counts=[halves of this frame].");
if (testCounts == "next frame" && estimate != "run model")
	fail("the next frame is tested against a model run on this frame; choose Estimate=[run model], or Test_counts=[halves of this frame].");
if (server == "")
	server = "embedded";

// A private job folder (random name, mode 0700): other users can neither read it nor plant links in it.
created = String.trim(exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "newjob", getDirectory("temp")));
if (startsWith(created, "ERROR") || !File.isDirectory(created))
	fail("could not create a job folder: " + replace(created, "ERROR\t", ""));
jobdir = created + File.separator;
wasBatch = is("Batch Mode");
setBatchMode(true);
noisyPath = exportFrame(inputID, "noisy");
testPath = "";
if (testCounts == "next frame") {
	selectImage(inputID);
	current = getSliceNumber();
	other = current + 1;
	if (current == nSlices)
		other = current - 1;
	setSlice(other);
	testPath = exportFrame(inputID, "test");
	selectImage(inputID);
	setSlice(current);
}
denoisedPath = "";
if (estimate != "run model") {
	selectImage(estimate);
	if (getWidth() != inputWidth || getHeight() != inputHeight)
		fail("the estimate '" + estimate + "' has another size than '" + inputTitle + "'; choose its denoised result.");
	denoisedPath = exportFrame(getImageID(), "denoised");
}
selectImage(inputID);
setBatchMode(wasBatch);
output = jobdir + "out";
request = "action=likelihood\ninput=" + noisyPath + "\ndenoised=" + denoisedPath + "\noutput=" + output
	+ "\nmodel=" + model + "\nmodality=" + modality + "\nserver=" + server + "\ngain=" + gain + "\noffset=" + offset
	+ "\npolarity=" + polarity + "\nvacuum=" + vacuum + "\nvacuum_level=" + vacuumLevel + "\nmin_sigma=" + minSigma
	+ "\nmax_sigma=" + maxSigma + "\nthreshold=" + threshold + "\nmap_units=" + mapUnits + "\ntest=" + testPath + "\n";
File.saveString(request, jobdir + "request.txt");

status = runMacro(here + "emdenoise-job.txt", TITLE + "|" + python + "|" + jobdir);
state = keyValue(status, "state");
message = keyValue(status, "message");
if (state == "")
	cancelled();
if (state != "done")
	fail(message);

regionCount = keyValue(status, "regions");
if (regionCount == "0") {  // no columns: a sentence, no empty map window
	exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "clean", jobdir);
	selectImage(inputID);
	done = TITLE + ": " + inputTitle + ": " + message;
	showStatus(done);
	print(done);
	exit;
}
base = baseName(inputTitle);
open(keyValue(status, "map"));
rename(base + "_llr");
mapID = getImageID();
// The columns go to the ROI Manager and, so that they stay with the image (also in batch
// mode, where the ROI Manager ends with the command), to the image's overlay.
selectImage(inputID);
rois = keyValue(status, "rois");
if (rois != "") {
	roiManager("reset");
	roiManager("open", rois);
	run("From ROI Manager");
}
open(keyValue(status, "overlay"));
overlayTitle = getTitle();
selectImage(inputID);
run("Add Image...", "image=[" + overlayTitle + "] x=0 y=0 opacity=70 zero");
close(overlayTitle);
open(keyValue(status, "table"));
exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "clean", jobdir);
selectImage(inputID);
done = TITLE + ": " + inputTitle + ": " + message;
showStatus(done);
if (is("Batch Mode"))
	print(done);

// ---------------------------------------------------------------------------------------
function exportFrame(id, name) {
	selectImage(id);
	run("Duplicate...", "title=emdenoise-" + name);
	path = jobdir + name + ".tif";
	saveAs("Tiff", path);
	close();
	return path;
}

function cancelled() {
	if (jobdir != "")
		exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "clean", jobdir);
	showStatus(TITLE + ": cancelled");
	if (is("Batch Mode"))
		print(TITLE + ": cancelled");
	exit;
}

function fail(message) {
	if (isOpen("emdenoise-noisy")) close("emdenoise-noisy");
	if (isOpen("emdenoise-denoised")) close("emdenoise-denoised");
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

function baseName(name) {
	lower = toLowerCase(name);
	if (endsWith(lower, ".tiff")) return substring(name, 0, lengthOf(name) - 5);
	if (endsWith(lower, ".tif")) return substring(name, 0, lengthOf(name) - 4);
	return name;
}
