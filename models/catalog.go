package models

// Catalog is every model Pull can fetch: whisper.cpp's ggml conversions of OpenAI's Whisper at
// DefaultBaseURL. Sizes and SHA-256 digests are the Git LFS object ids and sizes that Hugging Face
// publishes for ggerganov/whisper.cpp (its API's "lfs" field, revision
// 5359861c739e955e79d9a303bcbc70fb988958b1), each checked against at least one independent
// published record (Nix fetchurl SRI hashes, other download tables). The ".en" models are
// English-only; "-q5_0", "-q5_1" and "-q8_0" are quantized. There is no upstream large-v3-q8_0.
// Never edit a digest by hand without the upstream record it comes from.
var Catalog = []Entry{
	{Name: "tiny", Size: 77691713, SHA256: "be07e048e1e599ad46341c8d2a135645097a538221678b7acdd1b1919c6e1b21"},
	{Name: "tiny-q5_1", Size: 32152673, SHA256: "818710568da3ca15689e31a743197b520007872ff9576237bda97bd1b469c3d7"},
	{Name: "tiny-q8_0", Size: 43537433, SHA256: "c2085835d3f50733e2ff6e4b41ae8a2b8d8110461e18821b09a15c40c42d1cca"},
	{Name: "tiny.en", Size: 77704715, SHA256: "921e4cf8686fdd993dcd081a5da5b6c365bfde1162e72b08d75ac75289920b1f"},
	{Name: "tiny.en-q5_1", Size: 32166155, SHA256: "c77c5766f1cef09b6b7d47f21b546cbddd4157886b3b5d6d4f709e91e66c7c2b"},
	{Name: "tiny.en-q8_0", Size: 43550795, SHA256: "5bc2b3860aa151a4c6e7bb095e1fcce7cf12c7b020ca08dcec0c6d018bb7dd94"},
	{Name: "base", Size: 147951465, SHA256: "60ed5bc3dd14eea856493d334349b405782ddcaf0028d4b5df4088345fba2efe"},
	{Name: "base-q5_1", Size: 59707625, SHA256: "422f1ae452ade6f30a004d7e5c6a43195e4433bc370bf23fac9cc591f01a8898"},
	{Name: "base-q8_0", Size: 81768585, SHA256: "c577b9a86e7e048a0b7eada054f4dd79a56bbfa911fbdacf900ac5b567cbb7d9"},
	{Name: "base.en", Size: 147964211, SHA256: "a03779c86df3323075f5e796cb2ce5029f00ec8869eee3fdfb897afe36c6d002"},
	{Name: "base.en-q5_1", Size: 59721011, SHA256: "4baf70dd0d7c4247ba2b81fafd9c01005ac77c2f9ef064e00dcf195d0e2fdd2f"},
	{Name: "base.en-q8_0", Size: 81781811, SHA256: "a4d4a0768075e13cfd7e19df3ae2dbc4a68d37d36a7dad45e8410c9a34f8c87e"},
	{Name: "small", Size: 487601967, SHA256: "1be3a9b2063867b937e64e2ec7483364a79917e157fa98c5d94b5c1fffea987b"},
	{Name: "small-q5_1", Size: 190085487, SHA256: "ae85e4a935d7a567bd102fe55afc16bb595bdb618e11b2fc7591bc08120411bb"},
	{Name: "small-q8_0", Size: 264464607, SHA256: "49c8fb02b65e6049d5fa6c04f81f53b867b5ec9540406812c643f177317f779f"},
	{Name: "small.en", Size: 487614201, SHA256: "c6138d6d58ecc8322097e0f987c32f1be8bb0a18532a3f88f734d1bbf9c41e5d"},
	{Name: "small.en-q5_1", Size: 190098681, SHA256: "bfdff4894dcb76bbf647d56263ea2a96645423f1669176f4844a1bf8e478ad30"},
	{Name: "small.en-q8_0", Size: 264477561, SHA256: "67a179f608ea6114bd3fdb9060e762b588a3fb3bd00c4387971be4d177958067"},
	{Name: "medium", Size: 1533763059, SHA256: "6c14d5adee5f86394037b4e4e8b59f1673b6cee10e3cf0b11bbdbee79c156208"},
	{Name: "medium-q5_0", Size: 539212467, SHA256: "19fea4b380c3a618ec4723c3eef2eb785ffba0d0538cf43f8f235e7b3b34220f"},
	{Name: "medium-q8_0", Size: 823369779, SHA256: "42a1ffcbe4167d224232443396968db4d02d4e8e87e213d3ee2e03095dea6502"},
	{Name: "medium.en", Size: 1533774781, SHA256: "cc37e93478338ec7700281a7ac30a10128929eb8f427dda2e865faa8f6da4356"},
	{Name: "medium.en-q5_0", Size: 539225533, SHA256: "76733e26ad8fe1c7a5bf7531a9d41917b2adc0f20f2e4f5531688a8c6cd88eb0"},
	{Name: "medium.en-q8_0", Size: 823382461, SHA256: "43fa2cd084de5a04399a896a9a7a786064e221365c01700cea4666005218f11c"},
	{Name: "large-v3", Size: 3095033483, SHA256: "64d182b440b98d5203c4f9bd541544d84c605196c4f7b845dfa11fb23594d1e2"},
	{Name: "large-v3-q5_0", Size: 1081140203, SHA256: "d75795ecff3f83b5faa89d1900604ad8c780abd5739fae406de19f23ecd98ad1"},
	{Name: "large-v3-turbo", Size: 1624555275, SHA256: "1fc70f774d38eb169993ac391eea357ef47c88757ef72ee5943879b7e8e2bc69"},
	{Name: "large-v3-turbo-q5_0", Size: 574041195, SHA256: "394221709cd5ad1f40c46e6031ca61bce88931e6e088c188294c6d5a55ffa7e2"},
	{Name: "large-v3-turbo-q8_0", Size: 874188075, SHA256: "317eb69c11673c9de1e1f0d459b253999804ec71ac4c23c17ecf5fbe24e259a1"},
}
