// EM Compress (Plugins > emdenoise > EM Compress)
//
// Stores the current image or stack as seed-002 autoencoder latents in an .emz file
// (160x160 tiles -> 20x20xd latents, quantised and zstd-coded; pixel size, labels and
// Info kept), exactly as 'emdenoise compress IN -o OUT.emz --model ID'. EM Decompress
// restores it (with the autoencoder's denoising effect).
//
// Recordable: run("EM Compress", "model=ede-ae-d16 server=embedded bits=8 output=[/data/movie.emz]");
// add " overwrite" to replace an existing file.

var TITLE = "EM Compress";
var python = "";
// PYBOOT: python -c PYBOOT MODULE ARGS runs MODULE without ImageJ's working directory on sys.path (emdenoise.fiji.spawn.MACRO_BOOTSTRAP).
var PYBOOT = "import os, sys; here = os.getcwd(); sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != here]; import runpy; runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)";
var jobdir = "";

here = File.getParent(getInfo("macro.filepath")) + File.separator;
python = configValue(here, "python");
if (python == "")
	fail("emdenoise is not set up for this ImageJ; run 'emdenoise fiji install --fiji <this Fiji.app>' in the Python environment that has emdenoise.");
if (nImages == 0)
	fail("no image is open; open the micrograph or stack to compress first.");
if (bitDepth() == 24)
	fail("'" + getTitle() + "' is an RGB image; electron micrographs are single-channel, so convert it with Image > Type > 32-bit first.");

server = call("ij.Prefs.get", "emdenoise.server", "embedded");
listing = exec(python, "-c", PYBOOT, "emdenoise.fiji.bridge", "models", "--server", server, "--task", "encode");
models = newArray(0);
listingError = "";
lines = split(listing, "\n");
for (i = 0; i < lines.length; i++) {
	fields = split(lines[i], "\t");
	if (fields.length >= 2 && fields[0] == "ERROR")
		listingError = fields[1];
	else if (fields.length >= 4)
		models = Array.concat(models, fields[0]);
}
if (models.length == 0)
	models = newArray("ede-ae-d16");
lastModel = call("ij.Prefs.get", "emdenoise.compress.model", models[0]);
inputTitle = getTitle();
folder = getInfo("image.directory");
if (folder == "")
	folder = getDirectory("home");
defaultOutput = folder + baseName(inputTitle) + ".emz";

Dialog.create(TITLE);
Dialog.addChoice("Model", models, lastModel);
Dialog.addString("Server", server, 22);
Dialog.addChoice("Bits", newArray("8", "16"), "8");
Dialog.addString("Output", defaultOutput, 40);
Dialog.addCheckbox("Overwrite an existing file", false);
Dialog.addMessage("Latent depth d stores each 160x160 tile as 20x20xd values (64:d).\n'embedded' runs the model in a local Python worker; host:port uses a server.");
if (listingError != "")
	Dialog.addMessage("Could not list models: " + listingError);
Dialog.show();
model = Dialog.getChoice();
server = String.trim(Dialog.getString());
bits = Dialog.getChoice();
output = String.trim(Dialog.getString());
overwrite = Dialog.getCheckbox();
if (server == "")
	server = "embedded";
call("ij.Prefs.set", "emdenoise.compress.model", model);
if (File.exists(output) && !overwrite)
	fail(output + " already exists; tick 'Overwrite' or choose another output.");

inputID = getImageID();
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
	source = jobdir + "input.tif";
	saveAs("Tiff", source);
	close();
	selectImage(inputID);
	setBatchMode(wasBatch);
}
request = "action=compress\ninput=" + source + "\noutput=" + output + "\nmodel=" + model + "\nserver=" + server
	+ "\nbits=" + bits + "\noverwrite=" + overwrite + "\n";
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
done = TITLE + ": " + inputTitle + " -> " + keyValue(status, "output") + " (" + keyValue(status, "frames") + " frames, "
	+ keyValue(status, "bytes_per_pixel") + " bytes/pixel, " + keyValue(status, "ratio") + "x smaller, " + keyValue(status, "model") + ")";
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

function baseName(name) {
	lower = toLowerCase(name);
	if (endsWith(lower, ".tiff")) return substring(name, 0, lengthOf(name) - 5);
	if (endsWith(lower, ".tif")) return substring(name, 0, lengthOf(name) - 4);
	return name;
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
