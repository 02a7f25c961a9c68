// Denoise_Folder.ijm: a lab workflow, unchanged from lab to lab.
//
// Opens every TIFF and EM file (dm3, dm4, ser, emi, emd, mrc; these through EM Open, with
// their calibration) in a folder, runs EM Denoise on it and saves the result into another
// folder under the name 'emdenoise denoise' would give it (<name>_denoised-<model>.tif).
// Files whose result exists are skipped; a file that fails is reported and the batch goes on.
//
// Interactive: Plugins > Macros > Run... and pick the folders.
// Batch: 'emdenoise fiji install --fiji PATH' prints the exact command for that install, e.g.
//   python -m emdenoise fiji launch --headless --fiji ~/.imagej --batch ~/.imagej/macros/emdenoise/Denoise_Folder.ijm --arg "in=[/data/raw] out=[/data/denoised]"
// (model=ID picks a model, default: the default of each file's modality; server=host:port
// uses a running 'emdenoise serve', default: the embedded engine).

arg = getArgument();
input = call("ij.Macro.getValue", arg, "in", "");
output = call("ij.Macro.getValue", arg, "out", "");
model = call("ij.Macro.getValue", arg, "model", "default");
server = call("ij.Macro.getValue", arg, "server", "embedded");
modality = call("ij.Macro.getValue", arg, "modality", "any");
// Without the EM commands ImageJ would answer run("EM Denoise") with a dialog that blocks
// a batch run forever: stop here with a sentence instead.
if (!commandsReachable()) {
	print("Denoise_Folder: error: the EM commands are not installed in this ImageJ (Plugins > emdenoise is missing); run 'emdenoise fiji install --fiji <ImageJ folder>' and start ImageJ with -ijpath <ImageJ folder>, or use the command that install prints.");
	exit;
}
if (input == "")
	input = getDirectory("Folder of TIFF or EM files to denoise");
if (output == "")
	output = getDirectory("Folder for the denoised files");
if (!endsWith(input, File.separator)) input = input + File.separator;
if (!endsWith(output, File.separator)) output = output + File.separator;
if (!File.isDirectory(input)) {
	print("Denoise_Folder: error: the input folder " + input + " does not exist; check in=[...].");
	exit;
}
File.makeDirectory(output);

setBatchMode(true);
files = getFileList(input);
written = 0;
skipped = 0;
failed = 0;
for (i = 0; i < files.length; i++) {
	name = files[i];
	lower = toLowerCase(name);
	tiff = endsWith(lower, ".tif") || endsWith(lower, ".tiff");
	if (!tiff && !isEmFile(lower))
		continue;
	stem = substring(name, 0, lastIndexOf(name, "."));
	if (model != "default" && File.exists(output + stem + "_denoised-" + model + ".tif")) {
		print("skipped " + name + ": result exists");
		skipped++;
		continue;
	}
	before = 0;
	if (nImages > 0)
		before = getImageID();
	if (tiff)
		open(input + name);
	else
		run("EM Open", "path=[" + input + name + "]");
	if (nImages == 0 || getImageID() == before) {
		// EM Open printed why; keep going with the next file.
		print("failed " + name);
		failed++;
		continue;
	}
	opened = getImageID();
	run("EM Denoise", "model=" + model + " modality=" + modality + " server=" + server);
	if (getImageID() == opened) {
		// EM Denoise printed why; keep going with the next file.
		print("failed " + name);
		failed++;
	} else if (File.exists(output + getTitle())) {
		print("skipped " + name + ": result " + getTitle() + " exists");
		skipped++;
	} else {
		saveAs("Tiff", output + getTitle());
		print("wrote " + output + getTitle());
		written++;
	}
	close("*");
}
print("Denoise_Folder: " + written + " written, " + skipped + " skipped, " + failed + " failed");

function isEmFile(lower) {
	endings = newArray(".dm3", ".dm4", ".ser", ".emi", ".emd", ".mrc", ".mrcs", ".st", ".ali");
	for (k = 0; k < endings.length; k++)
		if (endsWith(lower, endings[k])) return true;
	return false;
}

// EM Denoise is served in-process ('emdenoise fiji launch') or installed as a macro command.
function commandsReachable() {
	if (call("java.lang.System.getProperty", "emdenoise.inprocess") == "true")
		return true;
	List.setCommands;
	found = List.get("EM Denoise");
	List.clear();
	if (found != "")
		return true;
	return false;
}
